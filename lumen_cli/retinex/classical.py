"""Classical Retinex building blocks (no learned weights), in the spirit of LIME
(Guo, Li, Ling, "LIME: Low-Light Image Enhancement via Illumination Map Estimation", TIP 2017).

All maps are (B,C,H,W) float32 tensors in [0,1]; images are sRGB (gamma-encoded).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def max_rgb(x: torch.Tensor) -> torch.Tensor:
    """Initial illumination: the brightest channel at each pixel, (B,1,H,W)."""
    return x.amax(dim=1, keepdim=True)


def _grad(t: torch.Tensor):
    dx = torch.zeros_like(t)
    dy = torch.zeros_like(t)
    dx[..., :, :-1] = t[..., :, 1:] - t[..., :, :-1]
    dy[..., :-1, :] = t[..., 1:, :] - t[..., :-1, :]
    return dx, dy


def _grad_t(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Adjoint of ``_grad`` (a negative divergence)."""
    out = torch.zeros_like(dx)
    out[..., :, :-1] -= dx[..., :, :-1]
    out[..., :, 1:] += dx[..., :, :-1]
    out[..., :-1, :] -= dy[..., :-1, :]
    out[..., 1:, :] += dy[..., :-1, :]
    return out


def structure_weights(t0: torch.Tensor, sigma: float = 2.0, eps: float = 1e-3):
    """LIME's strategy-III style weights: small across strong, coherent edges of t0."""
    dx, dy = _grad(t0)
    k = int(3 * sigma) | 1
    g = torch.exp(-((torch.arange(k, dtype=t0.dtype) - k // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(t0.device)

    def smooth(v):
        v = F.conv2d(F.pad(v, (k // 2, k // 2, 0, 0), mode="replicate"), g.view(1, 1, 1, k))
        return F.conv2d(F.pad(v, (0, 0, k // 2, k // 2), mode="replicate"), g.view(1, 1, k, 1))

    wx = smooth(torch.ones_like(dx)) / (smooth(dx).abs() + eps)
    wy = smooth(torch.ones_like(dy)) / (smooth(dy).abs() + eps)
    return wx, wy


def wls_smooth(t0: torch.Tensor, lam: float = 0.15, iters: int = 60) -> torch.Tensor:
    """Structure-aware smoothing of the initial illumination: argmin_t ||t - t0||^2 +
    lam * sum_d W_d ||d t||^2, solved by Jacobi-preconditioned conjugate gradients.
    t0: (B,1,h,w) float32; use it on a reduced-resolution map (the cost is linear in pixels)."""
    t0 = t0.float()
    wx, wy = structure_weights(t0)

    def A(v):
        dx, dy = _grad(v)
        return v + lam * _grad_t(wx * dx, wy * dy)

    # diagonal of A for the preconditioner
    diag = torch.ones_like(t0)
    diag[..., :, :-1] += lam * wx[..., :, :-1]
    diag[..., :, 1:] += lam * wx[..., :, :-1]
    diag[..., :-1, :] += lam * wy[..., :-1, :]
    diag[..., 1:, :] += lam * wy[..., :-1, :]
    x = t0.clone()
    r = t0 - A(x)
    z = r / diag
    p = z.clone()
    rz = (r * z).sum()
    for _ in range(iters):
        ap = A(p)
        alpha = rz / (p * ap).sum().clamp_min(1e-20)
        x = x + alpha * p
        r = r - alpha * ap
        z = r / diag
        rz_new = (r * z).sum()
        if rz_new.abs() < 1e-12:
            break
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x.clamp(0, 1)
