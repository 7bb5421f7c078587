"""Image quality metrics: PSNR and SSIM, the usual low-light enhancement protocol.

Protocol (what ``lumen eval``, validation and the benchmark report):

- both images are RGB, float in [0,1] sRGB, quantized to 8 bit first: ``round(clamp(x,0,1)*255)``;
- PSNR = 10 log10(255^2 / MSE), MSE over all pixels and the three channels of one image;
  identical images give ``inf``;
- SSIM (Wang et al. 2004): Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, dynamic range
  255, population (not sample) covariances, computed per RGB channel over the "valid" part of
  the image (windows entirely inside it) and averaged over pixels and channels. This matches
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``.

Scores are per image; a data set's score is the mean (or median) of the per-image scores.

``ssim(x, y, quantize=False)`` is differentiable (range 1, no rounding, float32 or wider with
autocast off) and serves as a training loss: ``1 - ssim(pred, target, quantize=False).mean()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03
WINDOW, SIGMA = 11, 1.5


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """x: float in [0,1] -> same shape, float64 integer values in [0,255]."""
    return torch.round(x.detach().double().clamp(0, 1) * 255.0)


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected (B,C,H,W) or (C,H,W) images, got shape {tuple(x.shape)}")
    return x


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pred, gt = _as_batch(pred), _as_batch(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction and reference differ in shape: {tuple(pred.shape)} vs {tuple(gt.shape)}"
        )
    return pred, gt


def psnr(pred: torch.Tensor, gt: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """PSNR in dB per image. pred, gt: (B,3,H,W) or (3,H,W) float in [0,1] sRGB.

    With ``quantize`` (the protocol) both are rounded to 8 bit and the peak is 255; without,
    the float values are compared with peak 1. Returns (B,) float64 (inf where identical).
    """
    pred, gt = _check_pair(pred, gt)
    if quantize:
        a, b, peak = quantize8(pred), quantize8(gt), 255.0
    else:
        a, b, peak = pred.double(), gt.double(), 1.0
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(peak**2 / mse)  # mse == 0 -> inf


def gaussian_kernel1d(window: int = WINDOW, sigma: float = SIGMA, dtype=torch.float64):
    """Normalised 1-D Gaussian taps, (window,)."""
    r = torch.arange(window, dtype=dtype) - (window - 1) / 2
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    return k / k.sum()


def _filter(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' region only. x: (B,C,H,W) -> (B,C,H-w+1,W-w+1)."""
    c = x.shape[1]
    kh = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def _moments(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor):
    """Local means, variances and covariance under the window k: (μx, μy, σx², σy², σxy)."""
    mu_x, mu_y = _filter(x, k), _filter(y, k)
    sxx = _filter(x * x, k) - mu_x * mu_x
    syy = _filter(y * y, k) - mu_y * mu_y
    sxy = _filter(x * y, k) - mu_x * mu_y
    return mu_x, mu_y, sxx, syy, sxy


def ssim_map(
    pred: torch.Tensor,
    gt: torch.Tensor,
    data_range: float = 1.0,
    window: int = WINDOW,
    sigma: float = SIGMA,
) -> torch.Tensor:
    """Per-pixel, per-channel SSIM over the valid region: (B,C,H-window+1,W-window+1).

    pred, gt: (B,C,H,W) in the same dtype. Differentiable.
    """
    k = gaussian_kernel1d(window, sigma, dtype=pred.dtype).to(pred.device)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y, sxx, syy, sxy = _moments(pred, gt, k)
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return num / den


def ssim(
    pred: torch.Tensor,
    gt: torch.Tensor,
    quantize: bool = True,
    window: int = WINDOW,
    sigma: float = SIGMA,
) -> torch.Tensor:
    """Mean SSIM per image, (B,). pred, gt: (B,3,H,W) or (3,H,W) float in [0,1] sRGB.

    ``quantize=True`` is the evaluation protocol (8-bit values, float64, range 255).
    ``quantize=False`` keeps gradients (range 1; computed in float32 or float64, with autocast
    off, so it is accurate inside bf16 training) for use as a loss. Images smaller
    than the window use the largest odd window that fits (only relevant for tiny crops).
    """
    pred, gt = _check_pair(pred, gt)
    h, w = pred.shape[-2:]
    if min(h, w) < window:
        window = max(1, min(h, w) - (1 - min(h, w) % 2))
    if quantize:
        m = ssim_map(quantize8(pred), quantize8(gt), 255.0, window, sigma)
    else:
        # float32 at least, autocast off: in bf16 the variance terms E[x^2] - E[x]^2 cancel
        dtype = torch.promote_types(pred.dtype, torch.float32)
        with torch.autocast(pred.device.type, enabled=False):
            m = ssim_map(pred.to(dtype), gt.to(dtype), 1.0, window, sigma)
    return m.flatten(1).mean(1)


def ssim_components(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """SSIM's three factors per image, (B,) each, under the evaluation protocol (8-bit, the
    same window): ``luminance`` (2μxμy+C1)/(μx²+μy²+C1), ``contrast`` (2σxσy+C2)/(σx²+σy²+C2)
    and ``structure`` (σxy+C2/2)/(σxσy+C2/2), whose pixelwise product is ``ssim_map``; plus
    ``std_pred`` and ``std_gt``, the mean local standard deviations (8-bit units). A
    diagnostic: which factor an output loses, e.g. structure (detail) or luminance (exposure)."""
    pred, gt = _check_pair(pred, gt)
    a, b = quantize8(pred), quantize8(gt)
    c1, c2 = (K1 * 255.0) ** 2, (K2 * 255.0) ** 2
    mu_x, mu_y, sxx, syy, sxy = _moments(a, b, gaussian_kernel1d().to(a.device))
    sx, sy = sxx.clamp_min(0).sqrt(), syy.clamp_min(0).sqrt()
    maps = {
        "luminance": (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1),
        "contrast": (2 * sx * sy + c2) / (sx**2 + sy**2 + c2),
        "structure": (sxy + c2 / 2) / (sx * sy + c2 / 2),
        "std_pred": sx,
        "std_gt": sy,
    }
    return {name: m.flatten(1).mean(1) for name, m in maps.items()}


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM, differentiable, scalar. pred, target: (B,3,H,W) in [0,1]."""
    return 1.0 - ssim(pred, target, quantize=False).mean()


def summarize(values: list[float]) -> dict[str, float]:
    """Mean and median of per-image scores (inf values kept out of the mean, counted)."""
    finite = [v for v in values if math.isfinite(v)]
    n_inf = len(values) - len(finite)
    if not values:
        return {"mean": float("nan"), "median": float("nan"), "n": 0, "n_inf": 0}
    s = sorted(values)
    mid = len(s) // 2
    median = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    mean = sum(finite) / len(finite) if finite else float("inf")
    return {"mean": mean, "median": median, "n": len(values), "n_inf": n_inf}
