"""The ``tone`` training stage (lumen addition): the global tone prior's curve net
(``lumen_cli.prior.tone``), trained on its own, shared by kind-lite and diff-retinex-lite.

The loss compares T(I_low) (``toned``, with its chroma noise reduction, as at inference) with
I_high; inputs get a random linear-light gain (``jitter_exposure``), so the curves learn to react
to the input's brightness rather than memorise scenes.
"""

from __future__ import annotations

import torch

from lumen_cli.prior.tone import linear_gain, match_luma, toned
from lumen_cli.retinex import losses as RL
from lumen_cli.train.stage import Stage

TONE_CROP = 256  # the largest crop the stage's loss compares (curves are pointwise)
EXPOSURE_JITTER = (-0.7, 0.5)  # log of the linear-light gain applied to training inputs


def jitter_exposure(x: torch.Tensor) -> torch.Tensor:
    """Scale each image of (B,3,H,W) sRGB in [0,1] by a random linear-light gain (global RNG),
    so the curves learn to react to the input's brightness rather than memorise scenes."""
    lo, hi = EXPOSURE_JITTER
    k = torch.exp(torch.empty(x.shape[0], 1, 1, 1, device=x.device).uniform_(lo, hi))
    return linear_gain(x, k)


@torch.no_grad()
def toned_whole(nets, low: torch.Tensor) -> torch.Tensor:
    """T(low) of whole training images (B,3,H,W), as at inference: curves of the whole image,
    chroma smoothed, luma denoised by its measured noise (the tone net is frozen after its
    stage). Cropping first would give each crop its own curves, which inference never does."""
    from lumen_cli.prior.tone import curves_for, tone_noise

    low = low.float()
    curves = curves_for(nets, low)
    return toned(low, curves, noise=tone_noise(low, curves))


def random_window(crop: int, H: int, W: int) -> tuple[int, int]:
    """(y, x): the top-left corner of a random ``crop`` x ``crop`` window of an H x W image
    (global RNG; crop <= min(H, W))."""
    return int(torch.randint(0, H - crop + 1, ())), int(torch.randint(0, W - crop + 1, ()))


def crop_together(crop: int | None, *images: torch.Tensor) -> tuple:
    """One random ``crop`` x ``crop`` window (``random_window``), the same for all (B,C,H,W)
    images; ``crop`` None or not smaller than the images: unchanged."""
    H, W = images[0].shape[-2:]
    if crop is None or crop >= min(H, W):
        return images
    y, x = random_window(crop, H, W)
    return tuple(im[..., y : y + crop, x : x + crop] for im in images)


def tone_loss(
    nets,
    batch,
    step,
    w_ssim: float = 0.5,
    crop: int = TONE_CROP,
    target_luma: float | None = None,
):
    """L1 + 0.5 (1 − SSIM) between T(I_low) (``toned``) and I_high; inputs exposure-jittered.

    ``target_luma``: compare with I_high brought to this mean luma (``match_luma``, on the
    whole loaded image) instead of I_high itself, so the curves learn shape and colour but
    not the brightness of each training reference (the brightness of a SICE reference is the
    bracket frame that happened to be chosen, which the low frame does not predict:
    benchmarks/CEILING.md).

    The curves come from the whole (loaded) low image, as at inference; the loss compares one
    random ``crop`` of it (at most ``crop`` pixels, so at full resolution when the stage loads
    large images, e.g. ``--set tone.resize=512 --set tone.crop=512``). With the stage's default
    128-pixel thumbnails the loss sees the whole thumbnail."""
    low, high = batch["low"].float(), batch["high"].float()
    if target_luma is not None:
        high = match_luma(high, target_luma)
    if nets["tone"].training:
        low = jitter_exposure(low)
    curves = nets["tone"](low)
    H, W = low.shape[-2:]
    ch, cw = min(crop, H), min(crop, W)
    y, x = int(torch.randint(0, H - ch + 1, ())), int(torch.randint(0, W - cw + 1, ()))
    low, high = low[..., y : y + ch, x : x + cw], high[..., y : y + ch, x : x + cw]
    out = toned(low, curves)  # with the chroma noise reduction, as at inference
    l1 = (out - high).abs().mean()
    with torch.autocast(out.device.type, enabled=False):
        ss = RL.ssim_loss(out.float(), high.float())
    return l1 + w_ssim * ss, {"l1": float(l1.detach()), "ssim": float(ss.detach())}


def tone_stage():
    """The ``tone`` training stage (whole images resized to 144 px, 128 px crops)."""
    return Stage(
        "tone",
        trains=("tone",),
        loss=tone_loss,
        validate_full=False,
        defaults={
            "lr": 1e-3,
            "steps": 3000,
            "batch_size": 16,
            "resize": 144,
            "crop": 128,
            "warmup": 100,
            "synth_ratio": 0.2,
        },
    )
