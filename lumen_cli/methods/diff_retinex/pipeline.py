"""Diff-Retinex (Yi, Xu, Zhang, Ma, ICCV 2023) as a lumen pipeline.

Recipe for one image x (1,3,H,W) float in [0,1], sRGB::

    analyze (whole image, once):
        x_s        = x resized so its long side is ida.work_size (area average)
        R_s, L_s   = tdn(x_s)
        L^_s       = DDIM(ida, cond = [L_s, R_s, x_s])          # IDA at low resolution
        noise      = N(0, I) of shape (1,3,H,W) from the CPU generator (--seed)
        g          = [mean R_s (rgb), mean L^_s]                  # global context for the RDA
    per tile:
        R, L       = tdn(x_tile)
        L^         = L * up(L^_s) / up(L_s)                       # guided: keeps L's edges
        R_base     = R, or in lite clamp(T(x) / L^)               # T: global tone curves
        feats      = rda.encode([R_base, L, L^, g])               # once per tile, not per step
        R^         = DDIM(rda(., feats), noise[tile])             # RDA at full resolution
        out        = R^ * L^

In the ``lite`` preset, T (``lumen_cli.pipelines.tone``, lumen addition) is a per-image,
per-channel tone curve predicted from a thumbnail of the whole photo; the RDA's residual base is
the reflectance that T(x) implies under L^, so sampling starts its refinement from a well
exposed, well coloured picture and learns noise and detail. Every x0 estimate of the RDA (in
training and at each sampling step) keeps the low frequencies of that base (``rda_model``,
``anchor_detail``, Gaussian σ 2 px): brightness and colour are the curves' decision, the
diffusion model changes only finer detail and noise. Measured on sice/val with the same
weights (10 steps): 20.75 dB / 0.752 without, 22.01 / 0.766 with (the RDA alone had drifted
darker than its base), 22.25 / 0.778 with the chroma noise reduction of T(x) (``toned``) on top.
Fine-tuning the RDA with anchored x0 (1000 steps, synthetic sensor noise on half the crops)
taught it to smooth texture: 22.33 / 0.763, so the shipped RDA is the one trained before.
Two more RDA fine-tunes from the shipped file (2026-12-02, 800 steps, lr 2e-4, no synthetic
noise, the current tone net) also lowered SSIM, on val and on the RDA's own training pairs
(every 7th, 40), against 0.7874 / 0.7819 shipped: a (1 - SSIM) term on the implied image
R^·L^ (weight 0.5) 0.7727 / 0.764; the L1 target given the tone base's low frequencies (so
the loss sees only the detail the anchored x0 may change) 0.7801 / 0.7742.
``opts.extra["anchor"]`` sets σ (0: off). The tone base also keeps one colour balance in the
deepest shadows and has its luma denoised in proportion to the noise measured on T(x) (see
``lumen_cli.pipelines.kind`` and ``tone.denoise_luma``): with the same weights, LOL eval15
(``lumen_cli.noref``, medians of 15, 10 steps) shadow colour shift 7.9 -> 4.4 and luma noise
4.59 -> 0.92; sice/val (10 steps) 22.91 / 0.7855 -> 22.91 / 0.7880.

The shipped tone net was re-trained without ``--synthesize`` (2026-12-02, 3000 steps, as for
kind-lite; the manifest has the command): the synthetic pairs' zero-mean white-balance shifts
had taught the curves to keep the SICE low frames' blue cast as scene colour (T(x) minus
reference channel shares on sice/val, median R/G/B -0.27/-0.53/+0.41 pp before,
-0.21/-0.17/+0.11 after; on LOL eval15 the blue lift over the input fell from +1.12 to +0.30 pp,
so walls and whites lost their lilac tint). sice/val (20 steps) 22.94 / 0.7882 -> 22.81 / 0.7874.

The IDA sees the whole (downsampled) picture, which is where the brightness decision lives;
the illumination map is smooth, so its low-resolution adjustment is carried to full size as a
gain on the full-resolution L. ``opts.exposure`` scales L^ (1.0 = the model's choice). The RDA
learns the normal-light reflectance *under the illumination L^ the pipeline applies*
(R* = I_n / L^, see ``rda_loss``), so R^ * L^ can reach the reference.

Diffusion as in the paper: linear betas over T = 1000 (RDA 1e-6 -> 1e-2, IDA 1e-6 -> 2e-2),
conditioning by the low-light maps, SR3 continuous noise level. Sampling is deterministic
DDIM with ``opts.steps`` steps. The paper's models predict the noise; the lite preset predicts
x0 (see ``PRESETS``), which keeps few-step samples clean (an eps error is amplified by
sqrt(1/a_bar - 1), up to 12x (RDA) and 150x (IDA) at the noisy end).

The last step with a tone net is ``tone.finish_shadows`` (2026-12-03, weights unchanged;
``opts.extra["post"]`` False: off), with one set of constants for both methods (see
``tone.finish_shadows``): sice/val (20 steps) 22.81 / 0.7874 -> 0.7996 SSIM on cached outputs
(0.7992 with RGB planes, 0.7947 with the guided filter that its DCT deblocking replaced). On
every 7th sice/train pair a stronger luma threshold would suit diff-retinex a little more
(k 2: 0.8067 against 0.8063 at the shared 1.75), but the last method-specific constant tried
(the replaced guided filter's strength: its train optimum took val from 0.7947 to 0.7932) did
not carry over, so both methods share theirs. With 16 x 16 DCT windows (2026-12-04, chosen
alike on train for both methods) 0.8006 on the same kind of cached outputs (fp32).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from lumen_cli.diffusion.ddim import ddim_sample
from lumen_cli.diffusion.objective import diffusion_loss
from lumen_cli.diffusion.schedule import alphas_cumprod, ddim_timesteps, linear_betas
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, crop_ctx
from lumen_cli.pipelines.tone import (
    ANCHOR_SIGMA,
    TONE_NET,
    anchor_detail,
    anchor_sigma,
    curves_for,
    finish_shadows,
    highlight_rolloff,
    lift_illumination,
    tone_noise,
    tone_reflectance,
    tone_stage,
    toned,
)
from lumen_cli.retinex import losses as RL

_RDA_SCHED = {"n_train": 1000, "beta_start": 1e-6, "beta_end": 1e-2}
_IDA_SCHED = {"n_train": 1000, "beta_start": 1e-6, "beta_end": 2e-2}

PRESETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    # shipped: trainable on one CPU core in about 70 minutes
    "lite": {
        "tone": TONE_NET,
        "tdn": (
            "diff-retinex.tdn",
            {
                "dim": 16,
                "blocks": [1, 1, 1],
                "refinement": 1,
                "heads": [1, 2, 4],
                "ffn_expansion": 2.0,
                "l_channels": 16,
                "stem": 2,
            },
        ),
        "rda": (
            "diff-retinex.denoiser",
            {
                "in_ch": 3,
                "cond_ch": 9,
                "out_ch": 3,
                "inner": 48,
                "mults": [1, 2, 2],
                "res_blocks": 1,
                "attn_levels": [],
                "heads": 4,
                "stem": 4,
                "cond_blocks": 1,
                "prediction": "x0",
                "residual": 3,
                "base_gain": 0.5,
                **_RDA_SCHED,
            },
        ),
        "ida": (
            "diff-retinex.denoiser",
            {
                "in_ch": 1,
                "cond_ch": 7,
                "out_ch": 1,
                "inner": 24,
                "mults": [1, 2, 4, 4],
                "res_blocks": 1,
                "attn_levels": [2],
                "heads": 4,
                "stem": 1,
                "cond_blocks": 1,
                "prediction": "x0",
                "residual": 1,
                "work_size": 96,
                **_IDA_SCHED,
            },
        ),
    },
    # the published sizes (official code): TDN dims 24/48/96, SR3 U-Nets inner 64 (RDA) and
    # 32 (IDA) with multipliers 1/2/4/6 and attention at 1/4 resolution, noise prediction
    "paper": {
        "tdn": (
            "diff-retinex.tdn",
            {
                "dim": 24,
                "blocks": [1, 2, 2],
                "refinement": 4,
                "heads": [1, 2, 4],
                "ffn_expansion": 2.66,
                "l_channels": 32,
            },
        ),
        "rda": (
            "diff-retinex.denoiser",
            {
                "in_ch": 3,
                "cond_ch": 9,
                "out_ch": 3,
                "inner": 64,
                "mults": [1, 2, 4, 6],
                "res_blocks": 2,
                "attn_levels": [2],
                "heads": 8,
                "stem": 1,
                "cond_blocks": 2,
                "prediction": "eps",
                **_RDA_SCHED,
            },
        ),
        "ida": (
            "diff-retinex.denoiser",
            {
                "in_ch": 1,
                "cond_ch": 7,
                "out_ch": 1,
                "inner": 32,
                "mults": [1, 2, 4, 6],
                "res_blocks": 2,
                "attn_levels": [2],
                "heads": 8,
                "stem": 1,
                "cond_blocks": 2,
                "prediction": "eps",
                "work_size": 256,
                **_IDA_SCHED,
            },
        ),
    },
}


def work_resize(x: torch.Tensor, size: int, multiple: int = 8) -> torch.Tensor:
    """Area-resize (B,C,H,W) so the long side is about ``size`` and both sides are multiples
    of ``multiple`` (aspect ratio kept as closely as that allows)."""
    H, W = x.shape[-2:]
    s = size / max(H, W)
    h = max(multiple, int(round(H * s / multiple)) * multiple)
    w = max(multiple, int(round(W * s / multiple)) * multiple)
    if (h, w) == (H, W):
        return x
    if h <= H and w <= W:
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def sampling_alphas(net, steps: int) -> list[float]:
    """alpha_bar at the ``steps`` DDIM steps of ``net``'s training schedule (noisiest first)."""
    n, b0, b1 = net.schedule
    a_bar = alphas_cumprod(linear_betas(n, b0, b1))
    return [float(a_bar[t]) for t in ddim_timesteps(n, steps)]


def _schedule_abar(net) -> torch.Tensor:
    n, b0, b1 = net.schedule
    return alphas_cumprod(linear_betas(n, b0, b1))


def rda_condition(
    r: torch.Tensor,
    l_map: torch.Tensor,
    l_hat: torch.Tensor,
    g: torch.Tensor,
    base_gain: float = 0.0,
    r_base: torch.Tensor | None = None,
) -> torch.Tensor:
    """RDA condition (B,9,h,w) in [-1,1]: R_low (3), L_low (1), the adjusted illumination
    L^ (1), and the global vector g (B,4) as constant maps.

    With ``r_base`` (B,3,h,w) (the tone-prior reflectance T(I) / L^, lumen addition), it
    replaces R_low as the first three channels, the RDA's residual base. Else, with
    ``base_gain`` > 0, R_low is first brightened by the global, non-clipping curve
    1 - (1 - R)^s with s = base_gain / mean(R_low) (from g, so all tiles agree): the RDA's
    residual base then carries the image's structure at a normal-light amplitude.
    """
    b, _, h, w = r.shape
    if r_base is not None:
        r = r_base.float()
    elif base_gain > 0:
        s = (base_gain / g[:, :3].float().mean(1).clamp_min(1e-3)).clamp(1.0, 20.0)
        r = 1 - (1 - r.float().clamp(0, 1)) ** s.view(b, 1, 1, 1)
    gm = g.to(r.dtype).view(b, -1, 1, 1).expand(b, g.shape[1], h, w)
    return torch.cat([r, l_map.to(r.dtype), l_hat.to(r.dtype), gm], 1) * 2 - 1


def guided_illumination(
    l_map: torch.Tensor, l_hat_s: torch.Tensor, l_low_s: torch.Tensor
) -> torch.Tensor:
    """Full-resolution adjusted illumination: L * up(L^_s) / up(L_s), in [0,1].

    l_map (B,1,h,w): TDN's L of the tile; l_hat_s, l_low_s (B,1,h,w): the IDA's output and
    TDN's L of the whole downsampled image, already cut and upsampled to the tile. The smooth
    low-resolution gain keeps the edges of the full-resolution L.
    """
    return (l_map.float() * l_hat_s.float() / l_low_s.float().clamp_min(0.02)).clamp(0, 1)


def ida_condition(l_s: torch.Tensor, r_s: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
    """IDA condition (B,7,h,w) in [-1,1]: L_low (1), R_low (3), the image (3)."""
    return torch.cat([l_s, r_s, x_s], 1) * 2 - 1


def add_sensor_noise(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Poisson-Gaussian noise in linear light on a fraction ``p`` of a batch (B,3,H,W) in
    [0,1] sRGB, per-image random strength, per-channel (colour) noise. Global torch RNG."""
    b = x.shape[0]
    lin = x.float().clamp(0, 1) ** 2.2

    def logu(lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(b, 1, 1, 1, device=x.device)
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))

    var = logu(1e-4, 3e-3) * lin + logu(1e-7, 2e-5)
    noisy = (lin + var.sqrt() * torch.randn_like(lin)).clamp(0, 1) ** (1 / 2.2)
    keep = (torch.rand(b, 1, 1, 1, device=x.device) >= p).float()
    return keep * x.float() + (1 - keep) * noisy


# -- training losses (one per stage) --------------------------------------------------------
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


def rda_model(rda, feats, r_base: torch.Tensor | None, sigma: float = ANCHOR_SIGMA):
    """model_fn(x_t, gamma) of the RDA for ``diffusion_loss`` / ``ddim_sample``. With a tone
    base (lite) and x0 prediction, every x0 estimate keeps the low frequencies of R_base
    (``anchor_detail``, lumen addition), in training and at each sampling step alike: the RDA
    then learns and changes only noise and detail, the tone curves own brightness and colour."""

    def fn(xt: torch.Tensor, gm: torch.Tensor) -> torch.Tensor:
        out = rda(xt, gm, feats)
        if r_base is None or sigma <= 0 or rda.prediction != "x0":
            return out
        return anchor_detail((out.float() + 1) / 2, r_base, sigma) * 2 - 1

    return fn


def rda_loss(nets, batch, step, crop: int = 128, noise_p: float = 0.5):
    """Denoising loss of the RDA on (near-)whole images (the stage loads them resized to a
    short side of 512 and cropped to 512x512). With a ``tone`` net, the residual base is the
    tone-prior reflectance (``rda_condition``) and the x0 estimates keep its low frequencies
    (``rda_model``), as at inference.

    As at inference, TDN and the whole-image maps come first: L_s = TDN(low_s), and the
    normal-light L_n,s = TDN(high_s) stands in for the IDA's output. Then a random ``crop`` of
    each image is (optionally) sensor-noised and decomposed, L^ = L * up(L_n,s) / up(L_s) as in
    ``guided_illumination``, and the RDA learns x0 = 2 R* - 1 with R* = clamp(I_n / L^): the
    normal-light reflectance under the illumination the pipeline will apply, so R*·L^ = I_n
    (the paper's target is TDN's R_n, which caps the result at TDN's reconstruction error).
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
                lo = add_sensor_noise(lo, noise_p)
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
    loss, x0 = diffusion_loss(
        rda_model(rda, feats, r_base), target * 2 - 1, _schedule_abar(rda), rda.prediction
    )
    with torch.no_grad():
        hi = torch.cat([a for a, _ in ims])
        lh = torch.cat([b for _, b in ims])
        img_err = ((x0.clamp(-1, 1) + 1) / 2 * lh - hi).abs().mean()
    return loss, {"img_l1": float(img_err)}


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
    loss, x0 = diffusion_loss(
        lambda xt, gm: ida(xt, gm, feats), l_h * 2 - 1, _schedule_abar(ida), ida.prediction
    )
    with torch.no_grad():
        l_err = ((x0.clamp(-1, 1) + 1) / 2 - l_h).abs().mean()
    return loss, {"l_l1": float(l_err)}


class DiffRetinexPipeline(Pipeline):
    method = "diff-retinex"
    size_multiple = 16
    default_steps = 20
    presets: ClassVar = PRESETS
    default_preset = "lite"
    memory_per_pixel = 6144

    def __init__(self, nets=None):
        super().__init__(nets)
        # the nets run channels-last inside (faster convolutions on CPUs): keep weights so too
        self.nets.to(memory_format=torch.channels_last)

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.train.stage import Stage

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

    # -- inference ----------------------------------------------------------------------
    def _steps(self, opts: EnhanceOptions) -> int:
        return int(opts.steps or self.default_steps)

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """x: (1,3,H,W) float32 in [0,1] sRGB. Returns the low-res maps, the global vector and
        the full-image RDA noise (drawn on the CPU from ``generator``)."""
        tdn, ida = self.nets["tdn"], self.nets["ida"]
        H, W = x.shape[-2:]
        x_s = work_resize(x.float(), ida.work_size).to(self.device)
        r_s, l_s = tdn(x_s)
        noise_s = torch.randn((1, 1) + tuple(x_s.shape[-2:]), generator=generator)
        noise = torch.randn((1, 3, H, W), generator=generator)
        feats = ida.encode(ida_condition(l_s, r_s, x_s))
        l_hat = ddim_sample(
            lambda xt, g: ida(xt, g, feats),
            noise_s.to(self.device),
            sampling_alphas(ida, self._steps(opts)),
            ida.prediction,
        )
        exposure = float(opts.exposure or 1.0)
        l_hat = ((l_hat + 1) / 2).clamp(0, 1)
        # the RDA's global vector as in training (the model's own L^); exposure scales L^ after
        g = torch.cat([r_s.float().mean((2, 3)), l_hat.mean((2, 3))], 1)
        l_hat = l_hat * exposure
        curves = curves_for(self.nets, x.to(self.device))
        return {
            "curves": curves,
            "tone_noise": None if curves is None else tone_noise(x, curves),
            "exposure": exposure,
            "l_hat_s": l_hat.float(),
            "l_low_s": l_s.float(),
            "g": g.float(),
            "noise": noise,
            "r_low_s": r_s.float(),
        }

    def _adjusted_l(self, l_map, ctx, region, opts) -> torch.Tensor:
        hw, dev = ctx["hw"], l_map.device
        l_hat_s = crop_ctx(ctx["l_hat_s"], region, hw).to(dev)
        l_low_s = crop_ctx(ctx["l_low_s"], region, hw).to(dev)
        return guided_illumination(l_map, l_hat_s, l_low_s)

    def _tone_base(self, x, l_hat, ctx):
        """(L_use, L_cond, R_base): with tone curves, L0 = L^ (without the --exposure scale)
        lifted to the max-RGB of T(x), the reflectance R_base = T(x) / L0, L_cond = L0 for the
        RDA's condition (as in training) and L_use = L0 · exposure for the product, so
        --exposure is a pure relighting gain. Without curves: (L^, L^, None)."""
        if ctx.get("curves") is None:
            return l_hat, l_hat, None
        e = ctx.get("exposure", 1.0)
        noise = ctx.get("tone_noise")
        x_t = toned(x, ctx["curves"].to(x.device), noise=0.0 if noise is None else noise)
        l0 = lift_illumination(l_hat.float() / e, x_t)
        return l0 * e, l0, tone_reflectance(x_t, l0)

    def _sample_r(self, r, l_map, l_cond, r_base, ctx, region, opts) -> torch.Tensor:
        rda = self.nets["rda"]
        b = r.shape[0]
        g = ctx["g"].to(r.device).expand(b, -1)
        feats = rda.encode(rda_condition(r, l_map, l_cond, g, rda.base_gain, r_base))
        noise = crop_ctx(ctx["noise"], region, ctx["hw"]).to(r.device).expand(b, -1, -1, -1)
        sigma = anchor_sigma(opts)
        out = ddim_sample(
            rda_model(rda, feats, r_base, sigma),
            noise,
            sampling_alphas(rda, self._steps(opts)),
            rda.prediction,
            callback=lambda i, n: opts.report("step", i, n),
        )
        return ((out + 1) / 2).clamp(0, 1)

    def enhance(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """x: (B,3,h,w) in [0,1] sRGB tile -> (B,3,h,w) in [0,1]."""
        r, l_map = self.nets["tdn"](x)
        l_hat = self._adjusted_l(l_map, ctx, region, opts)
        l_hat, l_cond, r_base = self._tone_base(x, l_hat, ctx)
        r_hat = self._sample_r(r, l_map, l_cond, r_base, ctx, region, opts)
        out = highlight_rolloff(r_hat * l_hat, ctx.get("exposure")).clamp(0, 1)
        return out if r_base is None else finish_shadows(x, out, opts)

    def decompose(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """TDN's {'reflectance': (B,3,h,w), 'illumination': (B,1,h,w)} in [0,1]; with
        ``opts.extra['adjusted']`` also 'reflectance_adjusted' (RDA) and
        'illumination_adjusted' (IDA)."""
        r, l_map = self.nets["tdn"](x)
        out = {"reflectance": r.float(), "illumination": l_map.float()}
        if opts.extra.get("adjusted"):
            l_hat = self._adjusted_l(l_map, ctx, region, opts)
            l_hat, l_cond, r_base = self._tone_base(x, l_hat, ctx)
            r_hat = self._sample_r(r, l_map, l_cond, r_base, ctx, region, opts)
            out["reflectance_adjusted"] = r_hat
            out["illumination_adjusted"] = l_hat
        return out
