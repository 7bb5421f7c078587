"""Refusion's windows: the latent of a whole photo encoded in row strips, and tile windows
aligned to a strided net's grid, so tiles see the blocks of the whole-image run."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lumen_cli import tiling
from lumen_cli.pipelines.base import Region

MARGIN = 32  # context (px, a multiple of 16) around a decoded tile and an encoded strip
STRIP_PIXELS = 1 << 20  # pixels per row strip when a local auto-encoder encodes a large photo


def has_attention(net: torch.nn.Module) -> bool:
    from lumen_cli.methods.refusion.nets import LinearAttention

    return any(isinstance(m, LinearAttention) for m in net.modules())


def _ceil(n: int, m: int) -> int:
    return -(-n // m) * m


def same_image(x: torch.Tensor) -> torch.Tensor:
    return x


def encode_latent(ae, x: torch.Tensor, mean_image=same_image) -> torch.Tensor:
    """The latent of ``mean_image(x)`` for the whole image (B,C,H/8,W/8 of the 16-padded size;
    ``mean_image`` a local map, e.g. the tone prior's T). A local auto-encoder (no attention)
    runs on row strips with MARGIN rows of context, bounding memory."""
    H, W = x.shape[-2:]
    m, f = ae.multiple, ae.multiple // 2
    Hp, Wp = _ceil(H, m), _ceil(W, m)
    rows = max(m, (STRIP_PIXELS // Wp) // m * m)
    if has_attention(ae) or Hp <= rows + 2 * MARGIN:
        return ae.encode(mean_image(x))[0]
    parts = []
    for sy0 in range(0, Hp, rows):
        sy1 = min(Hp, sy0 + rows)
        wy0, wy1 = max(0, sy0 - MARGIN), min(Hp, sy1 + MARGIN)
        z = ae.encode(mean_image(tiling.extract(x, wy0, 0, wy1, Wp)))[0]
        parts.append(z[..., (sy0 - wy0) // f : (sy1 - wy0) // f, :])
    return torch.cat(parts, dim=-2)


def aligned_window(
    region: Region, hw: tuple[int, int], m: int, margin: int = 0
) -> tuple[int, int, int, int]:
    """The window (y0, x0, y1, x1) that covers ``region`` plus ``margin`` px inside the image,
    with its start on the multiple-of-``m`` grid of the whole image and its size a multiple
    of ``m`` that ends at most at the whole image's padded size: a net with stride ``m`` sees
    in it the same blocks as in the whole (padded) image."""
    H, W = hw
    y0, x0, y1, x1 = region
    ye, xe = min(y1, H), min(x1, W)
    wy0, wx0 = max(0, (y0 - margin) // m * m), max(0, (x0 - margin) // m * m)
    wy1 = min(_ceil(H, m), wy0 + _ceil(ye + margin - wy0, m))
    wx1 = min(_ceil(W, m), wx0 + _ceil(xe + margin - wx0, m))
    return wy0, wx0, wy1, wx1


def crop_window(
    out: torch.Tensor, win: tuple[int, int, int, int], region: Region, hw: tuple[int, int]
) -> torch.Tensor:
    """``region`` of a window's output (its rows / columns past the image repeat the edge)."""
    H, W = hw
    y0, x0, y1, x1 = region
    ye, xe = min(y1, H), min(x1, W)
    out = out[..., y0 - win[0] : ye - win[0], x0 - win[1] : xe - win[1]]
    return F.pad(out, (0, x1 - xe, 0, y1 - ye), mode="replicate")
