"""Global tone prior (lumen addition shared by the Retinex methods): per-image, per-channel
monotone tone curves predicted from a thumbnail of the whole picture.

Why: on sice/val, a per-image per-channel curve fitted to the reference (an oracle) scores
26.10 dB / 0.802 SSIM, while smooth-illumination relighting, even with an oracle curve fitted
on top, stays near 0.75 SSIM: most of the error between a dim frame and its reference is a
global, pointwise tone and colour mapping (a camera response), which only a net that sees the
whole image can choose. The methods use ``T(I)`` as the starting point of their reflectance
nets (``T(I) / L^`` is the reflectance under the pipeline's adjusted illumination), so the
restoration / diffusion nets only learn what a curve cannot do: noise, local detail.

Curves are piecewise linear over ``knots + 1`` knots placed uniformly in sqrt(value), which
puts half of them below 0.25 where dim photos live; they start at 0, increase strictly, and end
at a learned white level in (0, 1]. Applying them is pointwise, so a whole-image curve computed
once (``analyze``) is applied to every tile seamlessly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ToneCurveNet(nn.Module):
    """x: (B,3,H,W) in [0,1] sRGB, any size -> curves (B,3,knots+1) in [0,1], increasing.

    A 4-layer strided CNN on a ``size``x``size`` area-resized copy (RGB + max-RGB, in sqrt
    space), mean and max pooled, plus a 16-bin histogram of sqrt(max-RGB), then an MLP.
    """

    def __init__(self, width: int = 32, knots: int = 24, size: int = 64, bins: int = 16):
        super().__init__()
        w = width
        self.knots, self.size, self.bins = knots, size, bins
        act = nn.LeakyReLU(0.2)
        self.features = nn.Sequential(
            nn.Conv2d(4, w, 3, 2, 1), act,
            nn.Conv2d(w, 2 * w, 3, 2, 1), act,
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1), act,
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), act,
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(8 * w + bins, 128), act, nn.Linear(128, 3 * (knots + 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.float(), size=(self.size, self.size), mode="area")
        m = x.amax(1, keepdim=True)
        z = self.features(torch.cat([x, m], 1).clamp(0, 1).sqrt() * 2 - 1)
        idx = (m.flatten(1).sqrt() * self.bins).floor().clamp(0, self.bins - 1).long()
        hist = F.one_hot(idx, self.bins).float().mean(1)
        z = torch.cat([z.mean((2, 3)), z.amax((2, 3)), hist.to(z.dtype)], 1)
        p = self.head(z).float().view(-1, 3, self.knots + 1)
        inc = F.softplus(p[..., : self.knots] + 1.0)
        cum = F.pad(torch.cumsum(inc, -1), (1, 0))
        white = torch.sigmoid(p[..., self.knots :] + 3.0)
        return cum / cum[..., -1:] * white


def apply_curves(x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Apply per-image, per-channel curves pointwise. x: (B,3,H,W) in [0,1]; curves
    (B,3,K+1) from ``ToneCurveNet`` (knot i at value (i/K)^2). Returns (B,3,H,W) float32."""
    B, C, H, W = x.shape
    K = curves.shape[-1] - 1
    u = x.float().clamp(0, 1).sqrt() * K
    i0 = u.floor().clamp(0, K - 1)
    f = u - i0
    i0 = i0.long().view(B, C, -1)
    c = curves.float().to(x.device).expand(B, C, K + 1)
    g0 = torch.gather(c, 2, i0).view(B, C, H, W)
    g1 = torch.gather(c, 2, i0 + 1).view(B, C, H, W)
    return g0 + (g1 - g0) * f
