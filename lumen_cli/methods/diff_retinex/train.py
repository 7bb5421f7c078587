"""Diff-Retinex's training (Yi, Xu, Zhang, Ma, ICCV 2023): one loss per stage.

Stages (``stages()``), in order: ``tdn`` (the official decomposition loss), ``tone`` (lumen's
global tone prior, ``lumen_cli.train.tone_stage``), ``rda`` (reflectance diffusion) and ``ida``
(illumination diffusion). Batches: {"low", "high"} (B,3,h,w) float32 in [0,1], sRGB.
"""

from __future__ import annotations

import torch

from lumen_cli.diffusion.denoiser import Denoiser
from lumen_cli.methods.diff_retinex.pipeline import (
    guided_illumination,
    ida_condition,
    rda_condition,
    rda_denoiser,
)
from lumen_cli.ops.resize import work_resize
from lumen_cli.pipelines.base import crop_ctx
from lumen_cli.prior.tone import curves_for, lift_illumination, tone_noise, tone_reflectance, toned
from lumen_cli.retinex import losses as RL
from lumen_cli.train.stage import Stage
from lumen_cli.train.synth import add_sensor_noise
from lumen_cli.train.tone_stage import tone_stage

# the RDA's synthetic sensor noise is stronger than KinD's (train/synth.add_sensor_noise)
RDA_NOISE = {"shot": (1e-4, 3e-3), "read": (1e-7, 2e-5)}


def tdn_loss(nets, batch, step):
    """Decomposition loss of the official TDN: reconstruction of both images (normal 1, low
    0.3), cross reconstruction (0.001 each), reflectance consistency ||R_l - sg(R_n)||1 (0.1),
    structure-aware illumination smoothness (0.1 for each image)."""
    low, high = batch["low"].float(), batch["high"].float()
    r_l, l_l = nets["tdn"](low)
    r_h, l_h = nets["tdn"](high)
    rec_h = RL.reconstruction(r_h, l_h, high)
    rec_l = RL.reconstruction(r_l, l_l, low)
    crs = RL.reconstruction(r_h, l_l, low) + RL.reconstruction(r_l, l_h, high)
    eq = RL.reflectance_similarity(r_l, r_h.detach())
    sm = RL.structure_aware_smoothness(l_l, r_l) + RL.structure_aware_smoothness(l_h, r_h)
    total = rec_h + 0.3 * rec_l + 0.001 * crs + 0.1 * sm + 0.1 * eq
    return total, {
        "rec_h": float(rec_h.detach()),
        "rec_l": float(rec_l.detach()),
        "eq_r": float(eq.detach()),
        "smooth": float(sm.detach()),
    }


def rda_loss(nets, batch, step, crop: int = 128, noise_p: float = 0.5, w_drift: float = 1.0):
    """Denoising loss of the RDA on (near-)whole images (the stage loads them resized to a
    short side of 512 and cropped to 512x512). With a ``tone`` net, the residual base is the
    tone-prior reflectance (``rda_condition``) and the x0 estimates keep its low frequencies
    (``rda_denoiser``), as at inference.

    As at inference, TDN and the whole-image maps come first: L_s = TDN(low_s), and the
    normal-light L_n,s = TDN(high_s) stands in for the IDA's output. Then a random ``crop`` of
    each image is (optionally) sensor-noised and decomposed, L^ = L * up(L_n,s) / up(L_s) as in
    ``guided_illumination``, and the RDA learns x0 = 2 R* - 1 with R* = clamp(I_n / L^): the
    normal-light reflectance under the illumination the pipeline will apply, so R*·L^ = I_n
    (the paper's target is TDN's R_n, which caps the result at TDN's reconstruction error).

    ``w_drift`` weighs the anchor's discarded part (``rda_denoiser``'s ``drift``): without it
    the raw estimate's low frequencies get no gradient and wander far from R_base, and the
    4x4 pixel-shuffle phases of the lite RDA (``stem``) then differ by a fraction of that
    wander, a dot grid that survives the anchor's high-pass. The anchored estimate is compared
    unclamped: clamped, it passes no gradient where it overshoots a target of 1 (a bright
    sky), and the RDA learns a dot grid there.
    """
    tdn, rda, ws = nets["tdn"], nets["rda"], nets["ida"].work_size
    low, high = batch["low"].float(), batch["high"].float()
    H, W = low.shape[-2:]
    c = min(crop, H, W)
    c -= c % 16
    with torch.no_grad():
        r_ls, l_ls = tdn(work_resize(low, ws))
        _, l_hs = tdn(work_resize(high, ws))
        g = torch.cat([r_ls.float().mean((2, 3)), l_hs.float().mean((2, 3))], 1)
        curves = curves_for(nets, low)  # the tone prior sees the whole image, as at inference
        conds, targets, ims, bases = [], [], [], []
        for i in range(low.shape[0]):
            y0 = int(torch.randint(0, H - c + 1, ()))
            x0 = int(torch.randint(0, W - c + 1, ()))
            region = (y0, x0, y0 + c, x0 + c)
            lo = low[i : i + 1, :, y0 : y0 + c, x0 : x0 + c]
            hi = high[i : i + 1, :, y0 : y0 + c, x0 : x0 + c]
            if noise_p > 0:
                lo = add_sensor_noise(lo, noise_p, **RDA_NOISE)
            r_l, l_l = tdn(lo)
            l_hat = guided_illumination(
                l_l,
                crop_ctx(l_hs[i : i + 1], region, (H, W)),
                crop_ctx(l_ls[i : i + 1], region, (H, W)),
            )
            r_base = None
            if curves is not None:
                x_t = toned(lo, curves[i : i + 1], noise=tone_noise(lo, curves[i : i + 1]))
                l_hat = lift_illumination(l_hat, x_t)
                r_base = tone_reflectance(x_t, l_hat)
                bases.append(r_base)
            conds.append(
                rda_condition(r_l.float(), l_l.float(), l_hat, g[i : i + 1], rda.base_gain, r_base)
            )
            targets.append((hi / l_hat.clamp_min(1e-3)).clamp(0, 1))
            ims.append((hi, l_hat))
        cond, target = torch.cat(conds), torch.cat(targets)
    feats = rda.encode(cond)
    r_base = torch.cat(bases) if bases else None
    drift = []
    loss, x0 = rda_denoiser(rda, r_base, drift=drift, clamp=False).loss(target * 2 - 1, feats)
    logs = {}
    if drift:
        loss = loss + w_drift * drift[0]
        logs["drift"] = float(drift[0].detach())
    with torch.no_grad():
        hi = torch.cat([a for a, _ in ims])
        lh = torch.cat([b for _, b in ims])
        img_err = ((x0.clamp(-1, 1) + 1) / 2 * lh - hi).abs().mean()
    return loss, {"img_l1": float(img_err), **logs}


def ida_loss(nets, batch, step):
    """Denoising loss of the IDA on whole images at its work size: x0 = 2 L_normal - 1 given
    [L_low, R_low, I_low]."""
    tdn, ida = nets["tdn"], nets["ida"]
    low = work_resize(batch["low"].float(), ida.work_size)
    high = work_resize(batch["high"].float(), ida.work_size)
    with torch.no_grad():
        r_l, l_l = tdn(low)
        _, l_h = tdn(high)
    feats = ida.encode(ida_condition(l_l, r_l, low))
    loss, x0 = Denoiser(ida).loss(l_h * 2 - 1, feats)
    with torch.no_grad():
        l_err = ((x0.clamp(-1, 1) + 1) / 2 - l_h).abs().mean()
    return loss, {"l_l1": float(l_err)}


def stages() -> list[Stage]:
    """Diff-Retinex's training stages in the order they run."""
    return [
        Stage(
            "tdn",
            ("tdn",),
            tdn_loss,
            validate_full=False,
            defaults={"steps": 800, "lr": 1e-3, "crop": 128, "batch_size": 4},
        ),
        tone_stage(),
        Stage(
            "rda",
            ("rda",),
            rda_loss,
            uses=("tdn", "tone"),
            validate_full=False,
            # (near-)whole images, stackable whatever their size
            defaults={"steps": 3000, "lr": 5e-4, "resize": 512, "crop": 512, "batch_size": 8},
        ),
        Stage(
            "ida",
            ("ida",),
            ida_loss,
            uses=("tdn", "rda"),
            defaults={
                "steps": 2000,
                "lr": 5e-4,
                "crop": None,
                "resize": 64,
                "batch_size": 8,
                "val_every": 500,
                "val_steps": 5,
            },
        ),
    ]
