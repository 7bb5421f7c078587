"""Physically based low-light synthesis from a normal-light sRGB photo.

The camera model, per image (all random choices from the given numpy generator):

1. undo the sRGB transfer curve -> linear light, [0,1];
2. a mild white-balance / colour shift: per-channel gains exp(N(0, wb_sigma)), normalised
   to keep the green channel fixed (dim scenes are often lit by warmer or colder light);
3. scale the exposure down by a factor k, log-uniform in ``exposure`` (1/40 .. 1/4);
4. signal-dependent shot noise and signal-independent read noise (the Poisson-Gaussian model
   of Foi et al. 2008): ``y = a * Poisson(s / a) + N(0, b^2)``, with the shot gain ``a`` and
   the read-noise sigma ``b`` log-uniform in their ranges (b is also scaled by a, since read
   noise in electrons is amplified by the same ISO gain);
5. clip to [0,1], reapply the sRGB curve, quantize to 8 bit.

The result is an 8-bit sRGB low-light image aligned with its normal-light source, with the heavy
colour noise of real night photos that the SICE pairs lack.

``add_sensor_noise`` is the torch counterpart used inside training losses: the same
Poisson-Gaussian model in linear light (gamma 2.2) on a random part of a batch;
``jpeg_roundtrip`` stores a batch as 8-bit JPEG and reads it back (OpenCV's libjpeg, 4:2:0), the
other degradation that brightening a real dim photo amplifies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear


@dataclass(frozen=True)
class SynthParams:
    exposure: tuple[float, float] = (1 / 40, 1 / 4)  # exposure scale k, log-uniform
    shot: tuple[float, float] = (2e-4, 4e-3)  # Poisson gain a (linear units per electron)
    read: tuple[float, float] = (0.5, 4.0)  # read-noise sigma, in units of the gain a
    wb_sigma: float = 0.08  # std of log channel gains


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def synthesize_low(
    high: np.ndarray, rng: np.random.Generator, params: SynthParams = SynthParams()
) -> np.ndarray:
    """high: (H,W,3) uint8 sRGB, normal light -> (H,W,3) uint8 sRGB, low light + sensor noise."""
    lin = srgb_to_linear(high.astype(np.float64) / 255.0)
    gains = np.exp(rng.normal(0.0, params.wb_sigma, size=3))
    gains /= gains[1]
    k = _log_uniform(rng, *params.exposure)
    s = np.clip(lin * gains * k, 0.0, 1.0)
    a = _log_uniform(rng, *params.shot)
    b = _log_uniform(rng, *params.read) * a
    y = a * rng.poisson(s / a) + rng.normal(0.0, b, size=s.shape)
    out = linear_to_srgb(y)
    return np.round(out * 255.0).astype(np.uint8)


def jpeg_roundtrip(x: torch.Tensor, quality: tuple[int, int] = (70, 95)) -> torch.Tensor:
    """Each image of x (B,3,H,W) sRGB in [0,1] encoded as a JPEG of quality uniform in
    ``quality`` (inclusive, torch's global RNG) and decoded: (B,3,H,W) float32, 8-bit values.
    Outside autograd (a training input, not a differentiable op)."""
    import cv2

    out = []
    q = torch.randint(int(quality[0]), int(quality[1]) + 1, (x.shape[0],))
    for img, qi in zip(x.detach().float().clamp(0, 1).cpu(), q.tolist(), strict=True):
        bgr = np.ascontiguousarray((img.permute(1, 2, 0).numpy()[..., ::-1] * 255).round())
        ok, buf = cv2.imencode(".jpg", bgr.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, qi])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
        out.append(torch.from_numpy(np.ascontiguousarray(dec)).permute(2, 0, 1))
    return torch.stack(out).to(x.device)


def add_sensor_noise(
    x: torch.Tensor,
    p: float = 0.5,
    shot: tuple[float, float] = (1e-4, 2e-3),
    read: tuple[float, float] = (1e-7, 1e-5),
) -> torch.Tensor:
    """Poisson-Gaussian sensor noise on a fraction ``p`` of a batch of dim sRGB images.

    x: (B,3,H,W) in [0,1], sRGB. Noise is added in linear light (gamma 2.2) with per-image
    shot gain a ~ logU(``shot``) and read variance b ~ logU(``read``), independently per
    channel (colour noise, as in real night photos such as LOL). Uses torch's global RNG.
    Returns float32 (B,3,H,W) in [0,1].
    """
    b = x.shape[0]
    dev = x.device
    lin = x.float().clamp(0, 1) ** 2.2

    def logu(lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(b, 1, 1, 1, device=dev)
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))

    var = logu(*shot) * lin + logu(*read)
    noisy = (lin + var.sqrt() * torch.randn_like(lin)).clamp(0, 1) ** (1 / 2.2)
    keep = (torch.rand(b, 1, 1, 1, device=dev) >= p).float()
    return keep * x.float() + (1 - keep) * noisy
