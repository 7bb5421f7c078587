"""Linear and edge-preserving filters on (B,C,H,W) tensors, and a noise estimate.

- ``gaussian_blur``: separable Gaussian, reflect padding;
- ``box_filter``: O(1)-per-pixel mean over a (2r+1)² window;
- ``guided_filter`` / ``guided_coeffs``: He, Sun, Tang, "Guided Image Filtering" (ECCV 2010);
- ``estimate_noise``: Immerkær, "Fast Noise Variance Estimation" (CVIU 1996), robust (MAD);
- ``quantization_step`` / ``dequantize``: the smoothest image inside the quantisation cells of
  an 8-bit input (projections onto convex sets, as in POCS dequantisation and de-banding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lumen_cli.ops.color import luma

# Immerkær's noise kernel: a difference of Laplacians, 6σ response to white noise of σ
NOISE_KERNEL = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W), per channel, reflect padding (radius 3σ; the
    kernel is cut to what reflect padding allows on tiny inputs). On the CPU, outside autograd,
    below float64 and for up to 4 channels: OpenCV's separable filter with the same kernel and
    border (``cv2.sepFilter2D``, float32); elsewhere each pass is a weighted sum of shifted
    slices (faster on CPU than oneDNN's depthwise convolution for these kernels)."""
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    pad = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    k = k[r - pad : r + pad + 1] / k[r - pad : r + pad + 1].sum()
    if (
        x.device.type == "cpu"
        and x.shape[1] <= 4
        and x.dtype != torch.float64
        and not (x.requires_grad and torch.is_grad_enabled())
    ):
        return _sep_filter_cv2(x, k.float().numpy())
    k = k.tolist()
    H, W = x.shape[-2:]
    y = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = y[..., :, :W] * k[0]
    for i in range(1, len(k)):
        rows = rows.add(y[..., :, i : i + W], alpha=k[i])
    out = rows[..., :H, :] * k[0]
    for i in range(1, len(k)):
        out = out.add(rows[..., i : i + H, :], alpha=k[i])
    return out


def _sep_filter_cv2(x: torch.Tensor, k) -> torch.Tensor:
    """x (B,C,H,W) on the CPU, C <= 4, filtered by the separable kernel k (numpy float32) along
    rows and columns, reflect-101 borders (torch's "reflect"); float32 out, x's dtype back."""
    import cv2

    b, c, h, w = x.shape
    src = x.detach().float().permute(0, 2, 3, 1).contiguous().numpy()  # (B,H,W,C)
    out = torch.empty(b, h, w, c)
    dst = out.numpy()
    for i in range(b):
        dst[i] = cv2.sepFilter2D(src[i], -1, k, k, borderType=cv2.BORDER_REFLECT_101).reshape(
            h, w, c
        )
    return out.permute(0, 3, 1, 2).to(x.dtype)


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, edges mirrored; O(1) per pixel (running sums) for any r."""
    if r <= 0:
        return x
    if r <= 2:
        xp = F.pad(x, (r, r, r, r), mode="reflect" if min(x.shape[-2:]) > r else "replicate")
        return F.avg_pool2d(xp, 2 * r + 1, stride=1)
    mode = "reflect" if min(x.shape[-2:]) > r + 1 else "replicate"
    xp = F.pad(x, (r + 1, r, r + 1, r), mode=mode)
    c = xp.float().cumsum(-2)  # float32 is enough: window sums stay far below 2^24
    c = c[..., 2 * r + 1 :, :] - c[..., : -2 * r - 1, :]
    c = c.cumsum(-1)
    c = c[..., :, 2 * r + 1 :] - c[..., :, : -2 * r - 1]
    return (c / (2 * r + 1) ** 2).to(x.dtype)


def guided_coeffs(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float):
    """Guided filter linear coefficients: src ~= a * guide + b locally (window radius r)."""
    mean_i = box_filter(guide, r)
    mean_p = box_filter(src, r)
    cov = box_filter(guide * src, r) - mean_i * mean_p
    var = box_filter(guide * guide, r) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return box_filter(a, r), box_filter(b, r)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps) -> torch.Tensor:
    """``src`` filtered with ``guide``'s edges; ``eps`` a scalar or a broadcastable map."""
    a, b = guided_coeffs(guide, src, r, eps)
    return a * guide + b


def estimate_noise(x: torch.Tensor) -> float:
    """Noise standard deviation of an sRGB image (B,3,H,W) per channel, from the median absolute
    deviation of a Laplacian-like high-pass (Immerkaer-style); a value in [0,1] units."""
    y = x.float().flatten(0, 1).unsqueeze(1)
    if min(y.shape[-2:]) < 3:  # 1x1, 2x2, 1xN: edges repeated so the 3x3 kernel fits
        y = F.pad(y, (1, 1, 1, 1), mode="replicate")
    k = y.new_tensor(NOISE_KERNEL).view(1, 1, 3, 3)
    hp = F.conv2d(y, k)
    mad = hp.abs().flatten().median()
    return float(mad / 0.6745 / 6.0)


def quantization_step(x: torch.Tensor, levels: int = 255, tol: float = 1e-3) -> float:
    """1 / ``levels`` if every value of x (any shape, [0,1]) lies on the grid k / ``levels``
    (within ``tol`` of a level), else 0.0: an 8-bit picture decoded without colour conversion
    has the step 1/255; a 16-bit or colour-converted one has none that matters."""
    v = x.detach().float().flatten()
    if v.numel() > 1 << 20:  # a strided sample is enough to tell
        v = v[:: v.numel() // (1 << 20)]
    d = (v * levels - (v * levels).round()).abs()
    return 1.0 / levels if bool((d <= tol).all()) else 0.0


def dequantize(x: torch.Tensor, step: float, sigma: float = 1.0, iters: int = 8) -> torch.Tensor:
    """The smooth image x is a rounding of: alternately blur (``gaussian_blur``, ``sigma`` px)
    and clamp back into each pixel's quantisation cell [x - step/2, x + step/2], ``iters``
    times (projections onto convex sets). x: (B,C,H,W) values on a grid of ``step``; returns
    float32 of the same shape, at most step/2 from x everywhere; x itself when ``step`` is 0.

    A flat area whose true level lies between two codes is stored as patches of both (the
    banding of dark gradients, the flat 8x8 blocks of a dark JPEG); brightening it 10-30x turns
    one code into 10-25 levels of step. Inside the cells those steps become ramps, while
    anything larger than one code, any real edge, is kept. Reach: about 3 sigma sqrt(iters)."""
    if step <= 0 or iters <= 0:
        return x
    x = x.float()
    lo, hi = x - step / 2, x + step / 2
    y = x
    for _ in range(iters):
        y = gaussian_blur(y, sigma).clamp(lo, hi)
    return y


def dequantize_luma(x: torch.Tensor, step: float, sigma: float = 1.0, iters: int = 8):
    """x (B,3,H,W) sRGB with its luma dequantised (``dequantize`` of the BT.601 luma with
    quantisation step ``step``): each pixel's RGB is scaled by its luma's change, so colour
    ratios stay; pixels whose luma is at most one code get the change as a grey offset instead
    (they hold no colour to keep). Float32 in [0,1]; x itself when ``step`` is 0."""
    if step <= 0 or sigma <= 0 or iters <= 0:
        return x
    x = x.float()
    y = luma(x)
    y2 = dequantize(y, step, sigma, iters)
    lit = y > step
    return torch.where(lit, x * (y2 / y.clamp_min(step)), x + (y2 - y)).clamp(0, 1)


__all__ = [
    "NOISE_KERNEL",
    "box_filter",
    "dequantize",
    "dequantize_luma",
    "quantization_step",
    "estimate_noise",
    "gaussian_blur",
    "guided_coeffs",
    "guided_filter",
]
