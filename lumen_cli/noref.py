"""No-reference measures for enhanced photos that have no reference image (real night photos
such as LOL eval15 in the benchmark): how much noise is left, and whether shadows keep their
colour. Values are in 8-bit units (0-255) so they read like pixel differences.

- ``noise_sigma``: Immerkær's fast noise estimate (1996): the image convolved with the
  Laplacian-difference kernel N = [[1,-2,1],[-2,4,-2],[1,-2,1]] has standard deviation 6σ for
  white Gaussian noise of σ, so σ = sqrt(π/2)/6 · mean |x * N|. Texture and edges also respond,
  so the mean is taken over the flatter half of the picture (pixels whose smoothed luma
  gradient is below the median): on real photos it is a noise figure, not an exact σ.
  Applied to luma (Y) and chroma (Cb, Cr; colour noise, the blotchy kind).
- ``shadow_shift``: over the input's darkest pixels (smoothed max-RGB below ``dark``), the mean
  CbCr distance between the (blurred) output and the (blurred) input brightened by one neutral
  gain to the output's luma there. A method that only brightens scores 0; per-channel curves
  that lift one channel more in the shadows (the green or magenta blacks of some learned
  methods) score high.
- ``hue_drift``: between two renderings of one photo (e.g. ``--exposure`` 1 and 2), the mean
  distance of their rg chromaticities (r, g over r+g+b), in percentage points, over pixels
  that are well exposed in both (blurred first, so noise does not count). A neutral change of
  exposure keeps chromaticity and scores about 0; a tint that appears with brightness does not.

All take sRGB images (B,3,H,W) float in [0,1] and return one value per image, (B,) float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lumen_cli.ops.color import rgb_to_ycbcr
from lumen_cli.ops.filters import NOISE_KERNEL, gaussian_blur

_N = torch.tensor(NOISE_KERNEL)
_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def _conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """'valid' 3x3 convolution of each channel of (B,C,H,W) -> (B,C,H-2,W-2)."""
    c = x.shape[1]
    return F.conv2d(x, k.to(x).view(1, 1, 3, 3).expand(c, 1, 3, 3), groups=c)


def flat_mask(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """(B,1,H-2,W-2) bool: pixels whose luma gradient (Sobel of the luma blurred by ``sigma``)
    is at most the image's median, i.e. the flatter half of each picture."""
    y = gaussian_blur(rgb_to_ycbcr(x)[:, :1].double(), sigma)
    g = _conv(y, _SOBEL).square() + _conv(y, _SOBEL.t()).square()
    med = g.flatten(1).median(1).values.view(-1, 1, 1, 1)
    return g <= med


def noise_sigma(x: torch.Tensor, flat_only: bool = True) -> torch.Tensor:
    """(B,3) noise σ of the Y, Cb and Cr planes of x (B,3,H,W) sRGB in [0,1], in 8-bit units
    (Immerkær's estimator; over ``flat_mask`` pixels unless ``flat_only`` is False)."""
    ycc = rgb_to_ycbcr(x).double() * 255.0
    r = _conv(ycc, _N).abs()
    if flat_only:
        m = flat_mask(x).to(r.dtype)
        mean = (r * m).flatten(2).sum(2) / m.flatten(2).sum(2).clamp_min(1)
    else:
        mean = r.flatten(2).mean(2)
    return mean * math.sqrt(math.pi / 2) / 6.0


def shadow_shift(
    out: torch.Tensor, inp: torch.Tensor, dark: float = 0.04, sigma: float = 4.0
) -> torch.Tensor:
    """(B,) mean CbCr distance (8-bit units) between ``out`` and ``inp`` brightened neutrally,
    over the input's dark pixels (max-RGB blurred by 2 px below ``dark``); NaN for an image
    without such pixels. out, inp: (B,3,H,W) sRGB in [0,1], same size; both are blurred by
    ``sigma`` first, so noise does not count, only the colour of the shadows."""
    if out.shape != inp.shape:
        raise ValueError(f"shadow_shift: sizes differ, {tuple(out.shape)} vs {tuple(inp.shape)}")
    mask = (gaussian_blur(inp.double().amax(1, keepdim=True), 2.0) < dark).double()
    yo = rgb_to_ycbcr(gaussian_blur(out.double(), sigma)).double()
    yi = rgb_to_ycbcr(gaussian_blur(inp.double(), sigma)).double()
    n = mask.flatten(1).sum(1)

    def masked_mean(t: torch.Tensor) -> torch.Tensor:
        return (t * mask).flatten(1).sum(1) / n.clamp_min(1)

    gain = masked_mean(yo[:, :1]) / masked_mean(yi[:, :1]).clamp_min(1e-6)
    d = (yo[:, 1:] - gain.view(-1, 1, 1, 1) * yi[:, 1:]).square().sum(1, keepdim=True).sqrt()
    res = masked_mean(d) * 255.0
    return torch.where(n > 0, res, torch.full_like(res, float("nan")))


def hue_drift(
    a: torch.Tensor, b: torch.Tensor, lo: float = 0.03, hi: float = 0.97, sigma: float = 2.0
) -> torch.Tensor:
    """(B,) mean rg-chromaticity distance of ``a`` and ``b`` (B,3,H,W sRGB in [0,1], same size)
    in percentage points, over the pixels where every channel of both, blurred by ``sigma``,
    lies in [lo, hi] (clipped and black pixels have no reliable hue); NaN where none does."""
    if a.shape != b.shape:
        raise ValueError(f"hue_drift: sizes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = gaussian_blur(a.double(), sigma), gaussian_blur(b.double(), sigma)
    ok = ((a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)).all(1)  # (B,H,W)

    def rg(x: torch.Tensor) -> torch.Tensor:
        return x[:, :2] / x.sum(1, keepdim=True).clamp_min(1e-6)

    d = (rg(a) - rg(b)).square().sum(1).sqrt() * 100.0
    n = ok.flatten(1).sum(1)
    res = (d * ok).flatten(1).sum(1) / n.clamp_min(1)
    return torch.where(n > 0, res, torch.full_like(res, float("nan")))


__all__ = ["flat_mask", "hue_drift", "noise_sigma", "shadow_shift"]
