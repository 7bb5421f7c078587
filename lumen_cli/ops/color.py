"""Colour: the one BT.601 luma definition, JPEG's YCbCr, and the exact sRGB transfer curve.

Torch is imported inside the functions, so torch-free modules (``lumen_cli.io``) can read
``LUMA`` without loading it. Images are (B,3,H,W) tensors in [0,1] unless said otherwise; the
sRGB transfer functions also take numpy arrays.
"""

from __future__ import annotations

import functools
from typing import Any

# ITU-R BT.601 luma weights on gamma-encoded sRGB (JPEG, tf.image.rgb_to_grayscale)
LUMA = (0.299, 0.587, 0.114)
# BT.601 full-range YCbCr (JPEG's): Y in [0,1], Cb and Cr in [-0.5, 0.5]
YCBCR = (LUMA, (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def luma(x):
    """(B,3,H,W) sRGB -> (B,1,H,W) BT.601 luma, in x's dtype."""
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


@functools.cache
def _ycc_lists() -> tuple[list, list]:
    """The YCbCr matrix and its inverse (float32 values) as lists: tensors are made per call,
    so none is ever an inference-mode tensor that autograd could not use later."""
    import torch

    m = torch.tensor(YCBCR)
    return m.tolist(), torch.linalg.inv(m).tolist()


def rgb_to_ycbcr(x):
    """(B,3,H,W) sRGB in [0,1] -> (B,3,H,W) float32 (Y, Cb, Cr), BT.601 full range."""
    import torch

    m = torch.tensor(_ycc_lists()[0], device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x.float())


def ycbcr_to_rgb(ycc):
    """Inverse of ``rgb_to_ycbcr`` (not clamped)."""
    import torch

    m = torch.tensor(_ycc_lists()[1], device=ycc.device)
    return torch.einsum("ij,bjhw->bihw", m, ycc.float())


def _lib(x: Any):
    import numpy as np

    if isinstance(x, np.ndarray):
        return np
    import torch

    return torch


def srgb_to_linear(x):
    """sRGB-encoded values in [0,1] -> linear light in [0,1] (IEC 61966-2-1, exact piecewise
    curve). numpy array or torch tensor in, the same out."""
    xp = _lib(x)
    return xp.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    """Linear light -> sRGB-encoded values in [0,1] (inverse of ``srgb_to_linear``; input
    clipped to [0,1] first). numpy array or torch tensor."""
    xp = _lib(x)
    x = xp.clip(x, 0.0, 1.0)
    return xp.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


__all__ = [
    "LUMA",
    "YCBCR",
    "linear_to_srgb",
    "luma",
    "rgb_to_ycbcr",
    "srgb_to_linear",
    "ycbcr_to_rgb",
]
