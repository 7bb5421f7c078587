"""LLDiffusion's sampling recipe as small pure functions (official test.py, see the fixture
README): linear betas 1e-4 -> 2e-2 over T = 1000 (float32), DDIM with eta 0 on the step list
0, T//S, 2 T//S, ... visited backwards down to -1 (``lumen_cli.diffusion.ddpm``), the x0
estimate never clipped.

Two ways to cover an image:

- whole image (``official_pad``): reflect-pad right/bottom by (floor(W/32)+1)*32 - W (always at
  least 1 px, 64 -> 96: the official quirk) and run the model on the whole padded image;
- overlapping patches (``patch_eps``, the official default ``-g 16``): at every step all p x p
  patches with corners every r px (row-major) get their own degradation features and colour
  map, and the eps estimates are averaged where patches overlap. A strip the corner grid misses
  ((H - p) or (W - p) not a multiple of r) is 0/0 = NaN in the official code; ``patch_corners``
  with ``cover=True`` (lumen's default) adds the last row/column of corners instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lumen_cli.diffusion.ddpm import alpha_bar_f32, ddim_skip_pairs, linear_betas_f32

T_TRAIN = 1000
PAPER_STEPS = 25

EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, cond, t)


def schedule() -> torch.Tensor:
    """alpha_bar(t), t = 0..T-1, float32 (T,)."""
    return alpha_bar_f32(linear_betas_f32(T_TRAIN, 1e-4, 2e-2))


def step_pairs(steps: int) -> list[tuple[int, int]]:
    """The official (t, t_next) visiting order for ``steps`` (25: (960, 920) ... (0, -1))."""
    return ddim_skip_pairs(T_TRAIN, steps)


def official_pad(x: torch.Tensor, multiple: int = 32) -> torch.Tensor:
    """Reflect-pad (B,C,H,W) right/bottom by (floor(W/m)+1)*m - W and likewise for H."""
    H, W = x.shape[-2:]
    ph, pw = (H // multiple + 1) * multiple - H, (W // multiple + 1) * multiple - W
    mode = "reflect" if ph < H and pw < W else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def ceil_pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (B,C,H,W) right/bottom to the next multiple (nothing when it is one)."""
    H, W = x.shape[-2:]
    ph, pw = -H % multiple, -W % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < H and pw < W else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def patch_corners(H: int, W: int, p: int, r: int, cover: bool = True) -> list[tuple[int, int]]:
    """(top, left) of the p x p patches, every r px, row-major (top outer). ``cover`` adds
    H - p / W - p when the grid misses the bottom/right strip (official: not added)."""
    tops, lefts = list(range(0, H - p + 1, r)), list(range(0, W - p + 1, r))
    if cover:
        tops += [H - p] if tops[-1] != H - p else []
        lefts += [W - p] if lefts[-1] != W - p else []
    return [(t, left) for t in tops for left in lefts]


def patch_eps(
    eps_fn: EpsFn,
    cond: torch.Tensor,
    corners: list[tuple[int, int]],
    p: int,
    batch: int = 512,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """model_fn(x_t, t) for ``ddim_eps_sample`` in patch mode (one image, (1,3,H,W)): crop all
    patches of x_t and cond, run ``eps_fn`` on chunks of ``batch`` patches, sum the eps into a
    canvas and divide by the coverage count."""
    mask = torch.zeros_like(cond)
    for top, left in corners:
        mask[..., top : top + p, left : left + p] += 1
    cond_p = torch.cat([cond[..., t : t + p, s : s + p] for t, s in corners])

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_p = torch.cat([x[..., a : a + p, b : b + p] for a, b in corners])
        canvas = torch.zeros_like(x)
        for i in range(0, len(corners), batch):
            out = eps_fn(x_p[i : i + batch], cond_p[i : i + batch], t[:1])
            for j, (a, b) in enumerate(corners[i : i + batch]):
                canvas[..., a : a + p, b : b + p] += out[j : j + 1]
        return canvas / mask

    return fn
