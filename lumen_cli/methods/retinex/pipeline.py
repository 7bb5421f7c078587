"""``retinex``: the classical illumination-map method (LIME-like). No weights.

1. Initial illumination T0 = max over RGB, on a reduced-resolution copy of the whole image.
2. Structure-aware smoothing of T0 (weighted least squares, edges kept) -> T.
3. T is brought back to full resolution with a guided filter whose coefficients are computed at
   low resolution (fast guided upsampling), so edges stay sharp and there are no halos.
4. Gamma on T chosen so that the result reaches a target mean luma (``--exposure`` e scales it
   by e^(1/2.2), so linear light by about e); output = I * T^(gamma - 1): the same gain on all
   three channels, so no colour cast.
5. Dark regions of the input are denoised (guided filter whose strength follows the measured
   noise level) before the gain, so the gain does not amplify noise.

Steps 1, 2 and the gamma choice see the whole image (``analyze``); tiles only apply the maps.
"""

from __future__ import annotations

import torch

from lumen_cli.ops.color import luma
from lumen_cli.ops.filters import estimate_noise, guided_coeffs, guided_filter
from lumen_cli.ops.resize import centre_crop, shrink
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, crop_ctx, srgb_gain
from lumen_cli.retinex import classical as C

ANALYSIS_SIDE = 512  # long side of the whole-image analysis copy
TARGET_LUMA = 0.38  # mean luma of a normally exposed photo (exposure 1.0)
FLOOR = 0.06  # smallest illumination used for division
CHROMA_RADIUS = 8  # window of the dark-region chroma smoothing


class RetinexPipeline(Pipeline):
    method = "retinex"
    memory_per_pixel = 600
    min_overlap = 6 * CHROMA_RADIUS  # guided filter reach 2r, and the feathering ramp around it
    reduced_precision = False  # cheap arithmetic; fp32 keeps the illumination solve exact
    parallel_tiles = False  # element-wise filters: two tiles at once were slower (NOTES)
    exposure_doc = "the target mean luma times exposure^(1/2.2) (the gain stays >= 1: never darker)"

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator) -> dict:
        H, W = x.shape[-2:]
        small = shrink(x, ANALYSIS_SIDE, min_side=8).to(self.device)
        t0 = C.max_rgb(small)
        t = C.wls_smooth(t0)
        # guided upsampling coefficients: full-res T ~= a * max_rgb(full) + b
        a, b = guided_coeffs(t0, t, r=2, eps=1e-3)
        target = min(0.9, TARGET_LUMA * srgb_gain(opts.exposure))
        gamma = _choose_gamma(small, t, target)
        # noise level from a centre crop of the full-resolution input
        sigma = estimate_noise(centre_crop(x, 512))
        return {"a": a, "b": b, "gamma": gamma, "sigma": sigma}

    def _illumination(self, x: torch.Tensor, ctx: dict, region: Region) -> torch.Tensor:
        a = crop_ctx(ctx["a"], region, ctx["hw"])
        b = crop_ctx(ctx["b"], region, ctx["hw"])
        return (a * C.max_rgb(x) + b).clamp(FLOOR, 1.0)

    def enhance(self, x, ctx, region, opts):
        x = x.float()
        t = self._illumination(x, ctx, region)
        sigma = max(ctx["sigma"], 1e-4)
        denoised = guided_filter(x, x, r=2, eps=(2.5 * sigma) ** 2)
        w = (1.0 - t).clamp(0, 1) ** 2  # denoise where the gain is large
        x = x + w * (denoised - x)
        # chroma noise (JPEG blocks, sensor colour noise) is what a big gain shows most: smooth
        # the colour difference to luma over a wider window where the illumination is dark
        y = luma(x)
        chroma = x - y
        smooth = guided_filter(y, chroma, r=CHROMA_RADIUS, eps=(4 * sigma) ** 2)
        x = y + chroma + w * (smooth - chroma)
        gain = t ** (ctx["gamma"] - 1.0)
        return (x * gain).clamp(0, 1)

    def decompose(self, x, ctx, region, opts):
        x = x.float()
        t = self._illumination(x, ctx, region)
        return {"reflectance": (x / t).clamp(0, 1), "illumination": t}


def _choose_gamma(x: torch.Tensor, t: torch.Tensor, target: float) -> float:
    """Bisection for gamma in [0.05, 1] so that mean luma of x * T^(gamma-1) hits ``target``."""
    t = t.clamp(FLOOR, 1.0)
    y = luma(x)

    def mean_at(g):
        return float((y * t ** (g - 1.0)).clamp(0, 1).mean())

    if mean_at(1.0) >= target:
        return 1.0
    lo, hi = 0.05, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if mean_at(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
