"""The authors' inference recipe for KinD / KinD++ (their ``evaluate.py``), step by step.

Used by ``KinDPipeline`` for the ``paper``, ``paper-plus`` and ``port`` presets (weights
converted with ``lumen weights convert kind``); lumen's own additions (tone prior, ratio
estimator, shadow finish, highlight roll-off) take no part. For one image x (B,3,H,W) in
[0,1] (the 8-bit file divided by 255)::

    x_s   = (x - min x) / max(max x - min x, 0.001)   # one min-max stretch over all pixels
    R, L  = decom(x_s)
    R'    = restore(R, L)
    L'    = adjust(L, ratio map)                       # ratio 5.0 in evaluate.py
    g     = min(sqrt(2 · gauss_3(gray(R))), 1)          # darken where the reflectance is dark
    F     = R' · g · L'      (KinD++ by default: R' · g; its --adjustment flag adds · L')
    out   = L · x_s + (1 - L) · F                       # blend by the *decomposition's* L
    save  = floor(255 · clip(out, 0, 1))                # an uint8 cast: truncation

``gray`` uses skimage's luminance weights (0.2125, 0.7154, 0.0721) and ``gauss_3`` skimage's
``filters.gaussian`` defaults (σ 3, edge-replicating border, kernel radius 4σ). KinD++ crops
the image to multiples of 4 after the stretch; lumen pads (mirrors) instead and keeps every
pixel, so outputs equal the official ones wherever the image already is a multiple of 4.
The official code runs whole images; lumen does too while the image fits the tile memory
budget (about 1 M pixels for KinD on a CPU), and beyond that tiles it with 128-pixel overlaps,
where the restoration nets' wide receptive field makes the result differ from an untiled run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumen_cli.errors import WeightsError

OFFICIAL_RATIO = 5.0  # evaluate.py's light ratio (KinD hard-codes it; KinD++'s --ratio default)
SKIMAGE_GRAY = (0.2125, 0.7154, 0.0721)


def stretch_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, scale) of the loader's min-max stretch, per image: x (B,3,H,W) -> two (B,1,1,1)."""
    flat = x.float().flatten(1)
    lo = flat.amin(1).view(-1, 1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1, 1)
    return lo, (hi - lo).clamp_min(0.001)


def gaussian_nearest(x: torch.Tensor, sigma: float = 3.0, truncate: float = 4.0) -> torch.Tensor:
    """skimage / scipy ``gaussian_filter`` of (B,C,H,W): normalised separable kernel of radius
    int(truncate·σ + 0.5), borders replicated ("nearest"), computed in float64."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = x.double()
    y = F.pad(y, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y.to(x.dtype)


def gray_gain(r: torch.Tensor) -> torch.Tensor:
    """evaluate.py's darkening gain from the decomposition's R (B,3,H,W) -> (B,1,H,W) in [0,1]."""
    w = torch.tensor(SKIMAGE_GRAY, dtype=r.dtype, device=r.device).view(1, 3, 1, 1)
    gray = (r * w).sum(1, keepdim=True)
    return torch.clamp(2 * gaussian_nearest(gray.float()), max=1).sqrt()


def fuse(
    x_s: torch.Tensor,
    r: torch.Tensor,
    l: torch.Tensor,
    r_hat: torch.Tensor,
    l_hat: torch.Tensor | None,
) -> torch.Tensor:
    """The evaluate.py fusion: R' · gain (· L' when ``l_hat`` is given), blended with the
    stretched input x_s by the decomposition's L. All (B,C,H,W) float; returns (B,3,H,W)."""
    fused = r_hat * gray_gain(r)
    if l_hat is not None:
        fused = fused * l_hat
    return l * x_s + (1 - l) * fused


def truncate_uint8(x: torch.Tensor) -> torch.Tensor:
    """floor(255 · clip(x)) / 255: the values KinD's uint8 cast writes (a writer that rounds
    to 8 bits then stores exactly these)."""
    return torch.floor(x.clamp(0, 1) * 255) / 255


def require(nets: nn.ModuleDict, *names: str) -> None:
    """WeightsError naming the official checkpoints a weights file lacks among ``names``."""
    from lumen_cli.methods.kind.convert import MISSING_HINT

    missing = [n for n in names if n not in nets]
    if missing:
        raise WeightsError(
            "kind: this weights file lacks "
            + "; and ".join(MISSING_HINT[n] for n in missing)
            + ". Convert that checkpoint together with the others (lumen weights convert "
            "kind FOLDER... -o FILE); `lumen decompose` needs only the decomposition net."
        )


def maps(
    nets: nn.ModuleDict,
    x: torch.Tensor,
    stretch: tuple[torch.Tensor, torch.Tensor],
    alpha: torch.Tensor,
    full: bool,
) -> dict[str, torch.Tensor]:
    """evaluate.py's maps of x (B,3,h,w) in [0,1]: {'x_s': stretched input, 'reflectance' R,
    'illumination' L} and, if ``full``, {'r_hat': R', 'l_hat': L' at the ratio ``alpha`` (B,)}.
    ``stretch``: (lo, scale) of the whole image (``stretch_range``). All float32."""
    lo, scale = (t.to(x.device) for t in stretch)
    x_s = (x.float() - lo) / scale
    r, l = (t.float() for t in nets["decom"](x_s))
    out = {"x_s": x_s, "reflectance": r, "illumination": l}
    if full:
        require(nets, "restore", "adjust")
        out["r_hat"] = nets["restore"](r, l).float()
        out["l_hat"] = nets["adjust"](l, alpha.to(x.device)).float()
    return out
