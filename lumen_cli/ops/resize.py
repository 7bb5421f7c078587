"""Resizing and cropping of (B,C,H,W) tensors for whole-image analysis copies."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre of (B,C,H,W), at most ``size`` x ``size`` pixels (a view, full resolution):
    where whole-image measurements (noise levels) are taken."""
    H, W = x.shape[-2:]
    ch, cw = min(H, size), min(W, size)
    y0, x0 = (H - ch) // 2, (W - cw) // 2
    return x[..., y0 : y0 + ch, x0 : x0 + cw]


def shrink(x: torch.Tensor, long_side: int, min_side: int = 1) -> torch.Tensor:
    """A whole-image analysis copy: x (B,C,H,W) area-averaged so its long side is at most
    ``long_side`` (never upscaled), as float32."""
    h, w = x.shape[-2:]
    s = min(1.0, long_side / max(h, w))
    small = x.float()
    if s < 1.0:
        size = (max(min_side, round(h * s)), max(min_side, round(w * s)))
        small = F.interpolate(small, size=size, mode="area")
    return small


def work_resize(x: torch.Tensor, size: int, multiple: int = 8) -> torch.Tensor:
    """Area-resize (B,C,H,W) so the long side is about ``size`` and both sides are multiples
    of ``multiple`` (aspect ratio kept as closely as that allows); upscaling is bilinear with
    antialiasing."""
    H, W = x.shape[-2:]
    s = size / max(H, W)
    h = max(multiple, int(round(H * s / multiple)) * multiple)
    w = max(multiple, int(round(W * s / multiple)) * multiple)
    if (h, w) == (H, W):
        return x
    if h <= H and w <= W:
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


__all__ = ["centre_crop", "shrink", "work_resize"]
