"""Global tone prior (lumen addition shared by the Retinex methods): per-image, per-channel
monotone tone curves predicted from a thumbnail of the whole picture.

Why: most of the error between a dim frame and its reference is a global, pointwise tone and
colour mapping (a camera response), which only a net that sees the whole image can choose
(a per-image curve fitted to the reference scores far above smooth-illumination relighting:
benchmarks/NOTES.md). The methods use ``T(I)`` as the starting point of their reflectance
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

SHADOW_KNOTS = 5  # see hold_shadow_balance


class ToneCurveNet(nn.Module):
    """x: (B,3,H,W) in [0,1] sRGB, any size -> curves (B,3,knots+1) in [0,1], increasing.

    A 4-layer strided CNN on a ``size``x``size`` area-resized copy (RGB + max-RGB, in sqrt
    space), mean and max pooled, plus a 16-bin histogram of sqrt(max-RGB), then an MLP.

    Below knot ``shadow_knots`` the three curves keep the channel ratios they have at that knot
    (``hold_shadow_balance``): the deepest shadows get the white balance of the lower
    mid-tones instead of a colour of their own (see there).
    """

    def __init__(
        self,
        width: int = 32,
        knots: int = 24,
        size: int = 64,
        bins: int = 16,
        shadow_knots: int = SHADOW_KNOTS,
    ):
        super().__init__()
        w = width
        self.knots, self.size, self.bins = knots, size, bins
        self.shadow_knots = shadow_knots
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
        return hold_shadow_balance(cum / cum[..., -1:] * white, self.shadow_knots)


def hold_shadow_balance(curves: torch.Tensor, k: int) -> torch.Tensor:
    """Curves (B,3,K+1) whose knots below ``k`` are the mean of the three curves times their
    ratios at knot ``k``; still increasing, still 0 at 0. ``k`` <= 0 returns them unchanged.

    Why: the learned curves are free per channel, and in the deepest shadows (input below
    (k/K)², 11/255 at k = 5 of 24) they drifted apart (one channel lifted up to 1.7x more), which
    turned black clothes on real night photos (LOL) olive or green; there the input is mostly
    noise and black level, so it holds no colour information worth a different white balance.
    k = 5 was chosen for neutral blacks on real night photos (benchmarks/NOTES.md)."""
    if k <= 0:
        return curves
    mean = curves.mean(1, keepdim=True)
    ratio = curves[..., k : k + 1] / mean[..., k : k + 1].clamp_min(1e-6)
    return torch.cat([mean[..., :k] * ratio, curves[..., k:]], -1)


def apply_curves(x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Apply per-image, per-channel curves pointwise. x: (B,3,H,W) in [0,1]; curves
    (B,3,K+1) from ``ToneCurveNet`` (knot i at value (i/K)^2). Returns (B,3,H,W) float32."""
    B, C, H, W = x.shape
    K = curves.shape[-1] - 1
    u = x.float().clamp(0, 1).sqrt() * K
    i0 = u.floor().clamp(0, K - 1)
    f = u - i0
    i0 = i0.long().reshape(B, C, -1)  # reshape: x may be a transposed (EXIF-rotated) view
    c = curves.float().to(x.device).expand(B, C, K + 1)
    g0 = torch.gather(c, 2, i0).reshape(B, C, H, W)
    g1 = torch.gather(c, 2, i0 + 1).reshape(B, C, H, W)
    return g0 + (g1 - g0) * f


def fit_curves(
    x: torch.Tensor, y: torch.Tensor, knots: int = 24, smooth: float = 1e-3
) -> torch.Tensor:
    """The curves of ``ToneCurveNet``'s family (knot i at value (i/K)², 0 at 0) that map x
    closest to y, per image and channel: least squares on the knot values, a small penalty
    ``smooth`` on differences of neighbouring knots (knots that no pixel reaches follow their
    neighbours), then made non-decreasing and clipped to [0, 1]. x, y: (B,3,H,W) in [0,1].
    Returns (B,3,K+1) float64.

    An oracle when y is the reference: it tells how far a perfect curve predictor could go
    (``benchmarks/ceiling.py``)."""
    B, C = x.shape[:2]
    K = knots
    u = x.double().clamp(0, 1).sqrt().flatten(2) * K  # (B,C,N)
    i0 = u.floor().clamp(0, K - 1).long()
    f = u - i0
    out = torch.zeros(B, C, K + 1, dtype=torch.float64)
    d = torch.diff(torch.eye(K, dtype=torch.float64), dim=0)  # neighbouring knots 1..K
    for b in range(B):
        for c in range(C):
            a = torch.zeros(u.shape[-1], K + 1, dtype=torch.float64)
            a.scatter_add_(1, i0[b, c, :, None], (1 - f[b, c, :, None]))
            a.scatter_add_(1, i0[b, c, :, None] + 1, f[b, c, :, None])
            a = a[:, 1:]  # curve(0) = 0
            n = a.shape[0]
            m = a.T @ a + smooth * n / K * (d.T @ d) + 1e-9 * torch.eye(K, dtype=torch.float64)
            sol = torch.linalg.solve(m, a.T @ y[b, c].double().flatten())
            out[b, c, 1:] = torch.cummax(sol.clamp(0, 1), 0).values
    return out
