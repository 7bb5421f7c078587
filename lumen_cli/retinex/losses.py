"""Retinex training losses shared by the learned methods (KinD, Diff-Retinex).

Images are (B,C,H,W) float tensors: an image I is RGB in [0,1] (sRGB), a reflectance R is
(B,3,H,W) in [0,1], an illumination L is (B,1,H,W) in [0,1]; ``I ≈ R·L``. Every loss returns a
scalar tensor (mean over the batch and pixels) and is differentiable.

The terms follow KinD (Zhang, Zhang, Guo, ACM MM 2019, Sec. 3) and RetinexNet (Wei et al. 2018):

- ``reconstruction``: ||R·L − I||₁;
- ``reflectance_similarity``: ||R_low − R_high||₁;
- ``illumination_smoothness``: ||∇L / max(|∇gray(I)|, ε)||₁ — L may change only where the
  image has edges;
- ``mutual_consistency``: M·exp(−c·M) with M = |∇L_low| + |∇L_high|: strong common edges are
  kept, weak ones are smoothed away;
- ``gradient_l2``: mean squared difference of gradient magnitudes (restoration / adjustment);
- ``ssim_loss`` (1 − SSIM) is re-exported from ``lumen_cli.metrics``.

Gradients are forward differences |x[i+1] − x[i]| with a zero in the last row/column, so a map
keeps its size. (The official TF code additionally min-max normalises each gradient map per
batch; lumen uses the paper's unnormalised form, whose value is defined per image.)
"""

from __future__ import annotations

import torch

from lumen_cli.metrics import ssim_loss
from lumen_cli.ops.color import LUMA

__all__ = [
    "rgb_to_gray",
    "gradients",
    "reconstruction",
    "reflectance_similarity",
    "illumination_smoothness",
    "mutual_consistency",
    "illumination_prior",
    "gradient_l2",
    "decomposition_loss",
    "ssim_loss",
]

_GRAY = LUMA  # BT.601, as tf.image.rgb_to_grayscale


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) -> (B,1,H,W) luma; a (B,1,H,W) input is returned unchanged."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute forward differences of (B,C,H,W) along x and y, both (B,C,H,W).

    gx[..., i, j] = |x[..., i, j+1] − x[..., i, j]| (0 in the last column); gy likewise by rows.
    """
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, :-1] = (x[..., :, 1:] - x[..., :, :-1]).abs()
    gy[..., :-1, :] = (x[..., 1:, :] - x[..., :-1, :]).abs()
    return gx, gy


def reconstruction(r: torch.Tensor, l: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """mean |R·L − I|. r: (B,3,H,W), l: (B,1,H,W) (broadcast over RGB), img: (B,3,H,W)."""
    return (r * l - img).abs().mean()


def reflectance_similarity(r_low: torch.Tensor, r_high: torch.Tensor) -> torch.Tensor:
    """mean |R_low − R_high| (both (B,3,H,W))."""
    return (r_low - r_high).abs().mean()


def illumination_smoothness(l: torch.Tensor, img: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """Structure-aware smoothness: mean over pixels of |∇L|/max(|∇gray(I)|, eps), x plus y.

    l: (B,1,H,W) illumination, img: (B,3,H,W) or (B,1,H,W) the image it was decomposed from.
    The image gradients act as weights only (no gradient flows into ``img``).
    """
    lx, ly = gradients(l)
    ix, iy = gradients(rgb_to_gray(img.detach()))
    return (lx / ix.clamp_min(eps) + ly / iy.clamp_min(eps)).mean()


def mutual_consistency(l_low: torch.Tensor, l_high: torch.Tensor, c: float = 10.0) -> torch.Tensor:
    """mean of M·exp(−c·M), M = |∇L_low| + |∇L_high|, summed over x and y. (B,1,H,W) each."""
    ax, ay = gradients(l_low)
    bx, by = gradients(l_high)
    mx, my = ax + bx, ay + by
    return (mx * torch.exp(-c * mx) + my * torch.exp(-c * my)).mean()


def illumination_prior(l: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """mean |L − max_c I|: pulls L towards the max-RGB illumination estimate (LIME's initial
    map; RetinexNet-style decompositions use it to rule out the trivial L ≡ 1, R ≡ I).
    l: (B,1,H,W), img: (B,3,H,W) (no gradient flows into ``img``)."""
    return (l - img.detach().amax(1, keepdim=True)).abs().mean()


def gradient_l2(pred: torch.Tensor, target: torch.Tensor, gray: bool = True) -> torch.Tensor:
    """mean((|∇pred| − |∇target|)²) over x plus y; RGB inputs are turned to luma first
    when ``gray`` (as KinD's restoration loss does). pred, target: (B,C,H,W)."""
    if gray:
        pred, target = rgb_to_gray(pred), rgb_to_gray(target)
    px, py = gradients(pred)
    tx, ty = gradients(target)
    return ((px - tx) ** 2 + (py - ty) ** 2).mean()


def decomposition_loss(
    r_low: torch.Tensor,
    l_low: torch.Tensor,
    r_high: torch.Tensor,
    l_high: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    w_rs: float = 0.01,
    w_is: float = 0.15,
    w_mc: float = 0.2,
    w_ip: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """KinD's layer-decomposition objective on a pair [I_low, I_high]:
    L_rec + 0.01·L_rs + 0.15·L_is + 0.2·L_mc, with L_rec and L_is over both images;
    ``w_ip`` > 0 adds ``w_ip``·``illumination_prior`` over both images (not in KinD).

    Returns (scalar loss, {term: float} for logging).
    """
    rec = reconstruction(r_low, l_low, low) + reconstruction(r_high, l_high, high)
    rs = reflectance_similarity(r_low, r_high)
    is_ = illumination_smoothness(l_low, low) + illumination_smoothness(l_high, high)
    mc = mutual_consistency(l_low, l_high)
    total = rec + w_rs * rs + w_is * is_ + w_mc * mc
    terms = [("rec", rec), ("rs", rs), ("is", is_), ("mc", mc)]
    if w_ip > 0:
        ip = illumination_prior(l_low, low) + illumination_prior(l_high, high)
        total = total + w_ip * ip
        terms.append(("ip", ip))
    logs = {k: float(v.detach()) for k, v in terms}
    return total, logs


# -- appended for Diff-Retinex (Yi et al., ICCV 2023) ---------------------------------------
def structure_aware_smoothness(l: torch.Tensor, r: torch.Tensor, c: float = 10.0) -> torch.Tensor:
    """Diff-Retinex's illumination smoothness: mean of |∇L|·exp(−c·avg3x3(|∇gray(R)|)), x plus y.

    l: (B,1,H,W) illumination; r: (B,3,H,W) reflectance of the same image (used as weights
    only: no gradient flows into ``r``). L may change where the reflectance is flat only at a
    cost, so its edges follow the structure of R.
    """
    import torch.nn.functional as F

    lx, ly = gradients(l)
    rx, ry = gradients(rgb_to_gray(r.detach()))
    rx = F.avg_pool2d(rx, 3, stride=1, padding=1)
    ry = F.avg_pool2d(ry, 3, stride=1, padding=1)
    return (lx * torch.exp(-c * rx) + ly * torch.exp(-c * ry)).mean()
