"""KinD ("Kindling the Darkness", Zhang, Zhang, Guo, ACM MM 2019) as a lumen pipeline.

Recipe for one image (x: (1,3,H,W) float in [0,1], sRGB)::

    analyze:  α0 = exp(ratio(x downsampled))   # light ratio from the input alone (lumen addition)
              α  = α0 · exposure                 # --exposure scales it (1.0 = default look)
              T  = tone(x downsampled)           # per-channel tone curves (lite; lumen addition)
    per tile: R, L = decom(x)                    # reflectance (3ch) and illumination (1ch)
              L̂   = adjust(L, α)                 # relight L to the ratio α
              R_in = R, or with T: clamp(T(x) / adjust(L, α0))   # the tone-prior reflectance
              R̂   = restore(R_in, L)             # denoise / fix colour of R, guided by L
              out = R̂ · L̂

The default light ratio is predicted by ``RatioNet`` from a downsampled copy of the whole
image (never from a reference; the official LOL evaluation takes it from the ground truth).
When a weights file has no ``ratio`` net, a fixed target mean illumination of 0.42 (the median
brightness of the SICE training references) is used: α0 = 0.42 / mean(max-RGB).

The official test script (``evaluate.py``) adds two steps: it darkens R̂ where the input
reflectance is near black, and blends the result with the input by L. Both are available via
``opts.extra`` (``darken_shadows``, ``blend_input``) and off by default (``DEFAULT_EXTRAS``):
measured with the session-1 kind-lite (before the tone prior) on sice/val, default
20.67 dB / 0.707 SSIM, darken_shadows 20.67 / 0.706 (lumen's R = I / max(L, max-RGB) is rarely
near black, so it barely acts), blend_input 18.70 / 0.702. With the shipped kind-lite
(22.71 / 0.787), ``--exposure`` 0.5 / 1 / 2 gave mean output brightness 0.205 / 0.389 / 0.722
on 8 val images, per-channel shares of the mean within 0.015 (no visible colour shift).
Above 1 the relit product R̂·L̂ overshoots 1 in the highlights: with a plain clip,
``--exposure 2`` left a median 42.9% of each LOL eval15 photo's pixels (up to 88%) at 255.
``tone.highlight_rolloff`` bends them instead (identity up to the knee 1/e, hue kept): 0.0%
clipped, median luma 165 against 205 (2026-12-02). BENCHMARKS.md has the 0.5x-2x table.

Presets: ``paper`` has the published sizes (decom 235,876, restore 7,760,739, adjust 19,393
parameters, plus the 14,547-parameter ratio estimator) and the paper's plain heads. ``lite``
(shipped; 2,209,766 parameters with the 175,083-parameter tone net) narrows decom to width 16
and restoration to widths 16-256 and uses lumen's *residual* heads: every net starts from the
identity (R = I / max(L, max-RGB), R̂ = R_low, L̂ = clip(α·L)) and learns a correction in
logit space. Measured here: with the paper's plain heads and loss weights, short CPU schedules
collapsed to L ≈ 1 (R ≈ I) and a constant white R̂.

The ``lite`` preset adds the global tone prior (``lumen_cli.pipelines.tone``): R_in · L̂0 is
the curve-mapped image T(x), so the residual restoration net starts from a well-exposed,
well-coloured picture and learns denoising and detail; ``--exposure`` still scales L̂ through α
(R_in uses the default α0, so the exposure acts on the output as KinD's light ratio does).
R̂ keeps the low frequencies of R_in (``anchor_detail``, Gaussian σ 2 px; ``opts.extra["anchor"]``,
0: off), in the joint stage and at inference: the restoration net changes only detail and noise,
the curves own brightness and colour. Measured on sice/val with the same weights: 21.39 dB /
0.763 without, 22.08 / 0.770 with (the restoration net had learned to darken the picture), and
22.28 / 0.780 with the chroma noise reduction of T(x) (``toned``) on top.

On real night photos (LOL eval15, no references; ``lumen_cli.noref``, medians of 15) the tone
base got two more steps, both with unchanged weights (2026-12-01): its curves keep one colour
balance in the deepest shadows (``nets.tone.hold_shadow_balance``; shadow colour shift 6.5 ->
3.8, the black clothes no longer olive), and its luma is denoised with a strength that follows
the noise measured on T(x) (``tone.denoise_luma``; luma noise 3.20 -> 0.68). On sice/val the two
together move kind-lite from 22.70 / 0.7875 to 22.70 / 0.7877.

Fine-tuning the joint stage *with* anchoring and 15% synthetic sensor noise (500 steps) taught
the restoration net to smooth: sice/val fell to 22.17 / 0.764, the darkest, most textured scenes
worst (s048_0370 0.738 -> 0.631 SSIM); without the synthetic noise (``--set
joint.loss_args.noise_p=0``, 800 steps, lr 2e-4) it rose from 22.66 / 0.785 to 22.71 / 0.787.

Its tone net was then re-trained without ``--synthesize`` (2026-12-02, 3000 steps, the recipe
of the manifest otherwise), which is the shipped kind-lite: the synthetic pairs' zero-mean
white-balance shifts had taught the curves to keep the SICE low frames' blue cast as scene
colour (T(x) minus reference channel shares on sice/val, median R/G/B +0.13/-0.38/+0.52 pp
before, -0.13/-0.14/+0.16 after; on LOL eval15 the blue lift over the input fell from +0.83 to
+0.10 pp, so whites lost their magenta tint). sice/val 22.72 / 0.7875 -> 22.65 / 0.7886.
Its joint stage was then fine-tuned once more on top (1500 steps, lr 2e-4, no synthetic noise;
the manifest has the command), so the restoration net fits those curves: the shipped kind-lite,
sice/val 22.65 / 0.7886 -> 22.64 / 0.7904, every 7th training pair 0.7887 -> 0.7917. A variant
that compared the output with I_high given the tone prior's low frequencies (the loss then sees
only what the anchored R^ may change) did worse after 600 steps: 0.7837 / 0.7866 against
0.7894 / 0.7905 for the plain loss.

Training stages (``stages()``): decomposition (the paper's loss plus a max-RGB illumination
prior, lumen addition), restoration, adjustment (+ the ratio estimator's log α regression), and
``tone`` (the curve net, when the preset has one) and ``joint`` (lumen addition: restoration,
adjustment and ratio nets fine-tuned end to end on the output R̂·L̂ against I_high, with the
predicted α, on 256-pixel crops of whole images whose curves and α come from the whole picture,
as at inference).

The shipped kind-lite's tone net was then re-trained once more (2026-12-02, the same 3000-step
recipe, ``--set tone.loss_args.target_luma=0.433``) against references brought to one mean luma,
the sice/train references' mean: the brightness of a SICE reference is the bracket frame that
happened to be chosen, which the low frame does not predict (benchmarks/CEILING.md), and the
curves had memorised it per training scene (output mean-luma error on sice/val, RMSE 0.0672,
worse than a constant guess, 0.0602). After: RMSE 0.0565, sice/val 22.64 / 0.7904 -> 22.86 /
0.7922 (T(x) alone 0.7853 -> 0.7850, so within the 0.006 spread between seeds of one recipe;
after 1000 of the 3000 steps it stood at 23.01 / 0.7935), every 7th training pair 0.7917 ->
0.7851 (their brightness is no longer fitted); LOL eval15 output mean luma 88-130 -> 95-114.

The last step of the tone-prior pipeline (2026-12-03, weights unchanged) is
``tone.finish_shadows``: a gain-adaptive deblocking / denoising (sliding-window DCT thresholds
of Y, Cb and Cr that follow the local gain, ``tone.dct_deblock``) and a black floor of at most
4/255 (``opts.extra["post"]`` False: off). kind-lite's SSIM deficit sat in the darkest input
regions (input luma < 0.04: a third of the pixels, 45% of the deficit), rendered too dark (the
curves start at 0) and with the input's JPEG blocks and quantisation amplified into flat tiles.
sice/val 22.86 / 0.7922 -> 0.8009 SSIM on cached outputs (0.7998 with RGB planes, 0.7965 with
the guided filter that the DCT step replaced), with the constants chosen on every 7th
sice/train pair; BENCHMARKS.md has the figures of record. With 16 x 16 DCT windows (2026-12-04,
chosen alike) 0.8017 on the same kind of cached outputs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, gaussian_blur, shrink
from lumen_cli.pipelines.tone import (
    ANCHOR_SIGMA,
    TONE_NET,
    anchor_detail,
    anchor_sigma,
    curves_for,
    finish_shadows,
    highlight_rolloff,
    lift_illumination,
    match_luma,
    tone_noise,
    tone_reflectance,
    tone_stage,
    toned,
)
from lumen_cli.retinex import losses as RL

W_IP = 1.0  # weight of the max-RGB illumination prior in the decomposition loss
TARGET_MEAN_L = 0.42  # median mean brightness of the sice/train references
ALPHA_RANGE = (0.05, 30.0)
DEFAULT_EXTRAS = {"darken_shadows": False, "blend_input": False}  # + "anchor": anchor_sigma
ANALYZE_SIZE = 256  # the ratio estimator sees the whole image at this long side (area average)

_LITE_RESTORE = [16, 32, 64, 128, 256]
_PAPER_RESTORE = [32, 64, 128, 256, 512]


def _preset(
    decom_w: int, restore_w: list[int], adjust_w: int, residual: bool, tone: bool = False
) -> dict[str, tuple[str, dict]]:
    return ({"tone": TONE_NET} if tone else {}) | {
        "decom": ("kind.decom", {"width": decom_w, "residual": residual}),
        "restore": ("kind.restore", {"widths": restore_w, "convs": 2, "residual": residual}),
        "adjust": (
            "kind.adjust",
            {"width": adjust_w, "convs": 3, "residual": residual}
            | ({"base": "odds"} if residual else {}),
        ),
        "ratio": ("kind.ratio", {"width": 16, "size": 64, "target": TARGET_MEAN_L}),
    }


# -- augmentation ---------------------------------------------------------------------------
def add_sensor_noise(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Poisson-Gaussian sensor noise on a fraction ``p`` of a batch of dim sRGB images.

    x: (B,3,H,W) in [0,1], sRGB. Noise is added in linear light (gamma 2.2) with per-image
    shot gain a ~ logU(1e-4, 2e-3) and read variance b ~ logU(1e-7, 1e-5), independently per
    channel (colour noise, as in real night photos such as LOL). Uses torch's global RNG.
    """
    b = x.shape[0]
    dev = x.device
    lin = x.float().clamp(0, 1) ** 2.2

    def logu(lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(b, 1, 1, 1, device=dev)
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))

    var = logu(1e-4, 2e-3) * lin + logu(1e-7, 1e-5)
    noisy = (lin + var.sqrt() * torch.randn_like(lin)).clamp(0, 1) ** (1 / 2.2)
    keep = (torch.rand(b, 1, 1, 1, device=dev) >= p).float()
    return keep * x.float() + (1 - keep) * noisy


def _f(t: torch.Tensor) -> torch.Tensor:
    return t.float()


def _ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − SSIM in float32 even under autocast (bf16 variances cancel to −inf)."""
    with torch.autocast(pred.device.type, enabled=False):
        return RL.ssim_loss(pred.float(), target.float())


def _logs(**terms: torch.Tensor) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}


# -- stage losses ---------------------------------------------------------------------------
def decomposition_loss(nets, batch, step):
    """L_rec + 0.01 L_rs + 0.15 L_is + 0.2 L_mc on [I_low, I_high] (decom net), plus
    W_IP·|L − max-RGB| (lumen addition: with the paper's weights alone, 600 steps here gave the
    trivial L ≈ 1, R ≈ I for both images, leaving nothing for the adjustment net to relight;
    with the prior, mean(L_high)/mean(L_low) tracks the images' brightness ratio)."""
    low, high = batch["low"], batch["high"]
    r, l = nets["decom"](torch.cat([low, high], 0))
    r, l = _f(r), _f(l)
    n = low.shape[0]
    return RL.decomposition_loss(r[:n], l[:n], r[n:], l[n:], low, high, w_ip=W_IP)


def restoration_loss(nets, batch, step, noise_p: float = 0.3):
    """||R̂ − R_high||² + (1 − SSIM) + gradient L2, R̂ = restore(R_low, L_low); decom frozen.
    Synthetic sensor noise on part of the inputs teaches denoising of real night photos."""
    low = add_sensor_noise(batch["low"], noise_p) if noise_p > 0 else batch["low"]
    with torch.no_grad():
        r, l = nets["decom"](torch.cat([low, batch["high"]], 0))
    n = low.shape[0]
    r_low, l_low, r_high = r[:n], l[:n], _f(r[n:])
    pred = _f(nets["restore"](r_low, l_low))
    mse = F.mse_loss(pred, r_high)
    ss = _ssim_loss(pred, r_high)
    grad = RL.gradient_l2(pred, r_high)
    return mse + ss + grad, _logs(mse=mse, ssim=ss, grad=grad)


def _ratio_target(l_src: torch.Tensor, l_tgt: torch.Tensor) -> torch.Tensor:
    """(B,) α = mean(L_tgt) / mean(L_src), the ratio KinD's adjustment net is given."""
    return l_tgt.flatten(1).mean(1) / l_src.flatten(1).mean(1).clamp_min(1e-4)


def adjustment_loss(nets, batch, step, identity_p: float = 0.15):
    """L2 + gradient-magnitude loss of adjust(L_src, α) vs L_tgt, in both directions between
    L_low and L_high (α = ratio of their means; a few identity samples with α = 1 cover the
    range in between). When a ``ratio`` net is present, it learns log α(low -> high) from the
    low image alone (lumen addition)."""
    low, high = batch["low"], batch["high"]
    n = low.shape[0]
    with torch.no_grad():
        _, l = nets["decom"](torch.cat([low, high], 0))
    l = _f(l)
    l_low, l_high = l[:n], l[n:]
    u = torch.rand(n, 1, 1, 1, device=l.device)
    up = (u < 0.5).float()  # low -> high
    src = up * l_low + (1 - up) * l_high
    tgt = up * l_high + (1 - up) * l_low
    same = (torch.rand(n, 1, 1, 1, device=l.device) < identity_p).float()
    tgt = same * src + (1 - same) * tgt
    alpha = _ratio_target(src, tgt)
    pred = _f(nets["adjust"](src, alpha))
    mse = F.mse_loss(pred, tgt)
    grad = RL.gradient_l2(pred, tgt, gray=False)
    loss, logs = mse + grad, _logs(mse=mse, grad=grad)
    if "ratio" in nets and any(p.requires_grad for p in nets["ratio"].parameters()):
        log_a = _f(nets["ratio"](low))
        rl = F.smooth_l1_loss(log_a, torch.log(_ratio_target(l_low, l_high)), beta=0.1)
        loss, logs["ratio"] = loss + rl, float(rl.detach())
    return loss, logs


def joint_loss(
    nets,
    batch,
    step,
    noise_p: float = 0.15,
    crop: int = 256,
    target_luma: float | None = None,
    post: bool = False,
):
    """End-to-end fine-tuning (lumen addition): out = restore(R_in,L) · adjust(L, α̂), α̂ from
    the ratio net on the low image; L1 + (1 − SSIM) against I_high, plus the ratio net's own
    log α loss. Decom (and the tone net) frozen. R_in is R_low, or with a ``tone`` net the
    tone-prior reflectance T(I_low) / L^ (``restore_input``), and R̂ keeps the tone prior's low
    frequencies (``anchor_detail``), as at inference.

    The stage loads whole images: the tone curves and the ratio net see the whole picture, as
    they do at inference (computing them on the crop taught the restoration net to undo the
    difference), and then one random ``crop`` per image goes through the nets.

    ``target_luma``: compare with I_high brought to this mean luma (``match_luma`` on the whole
    image, as ``tone_loss`` does; the ratio net's target follows), so the nets are not asked for
    the brightness of each training reference, which the low frame does not predict.

    ``post``: compare the output after ``tone.finish_shadows`` (the last inference step), so
    the restoration net learns what those fixed post-steps leave to it."""
    full_low, full_high = batch["low"], batch["high"]
    if target_luma is not None:
        full_high = match_luma(full_high.float(), target_luma).to(full_high.dtype)
    n = full_low.shape[0]
    with torch.no_grad():
        curves = curves_for(nets, full_low)
    log_a = _f(nets["ratio"](full_low))
    alpha = torch.exp(log_a).clamp(*ALPHA_RANGE)
    H, W = full_low.shape[-2:]
    c = min(crop, H, W)
    c -= c % 16
    ys = torch.randint(0, H - c + 1, (n,)).tolist()
    xs = torch.randint(0, W - c + 1, (n,)).tolist()

    def cut(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([t[i, :, y : y + c, x : x + c] for i, (y, x) in enumerate(zip(ys, xs))])

    low, high = cut(full_low), cut(full_high)
    low = add_sensor_noise(low, noise_p) if noise_p > 0 else low
    with torch.no_grad():
        r, l = nets["decom"](torch.cat([low, high], 0))
        noise = None if curves is None else tone_noise(low, curves)
    r_low, l_low = r[:n], l[:n]
    target_log_a = torch.log(_ratio_target(_f(l_low), _f(l[n:])))
    l_hat = _f(nets["adjust"](l_low, alpha))
    r_in, l_hat = restore_input(low, r_low, l_hat, curves, noise)
    r_hat = _f(nets["restore"](r_in, l_low))
    if curves is not None:
        r_hat = anchor_detail(r_hat, r_in, ANCHOR_SIGMA)
    out = r_hat * l_hat
    if post and curves is not None:
        out = finish_shadows(low, out.clamp(0, 1))
    l1 = (out - high).abs().mean()
    ss = _ssim_loss(out, high)
    rl = F.smooth_l1_loss(log_a, target_log_a, beta=0.1)
    return l1 + ss + 0.5 * rl, _logs(l1=l1, ssim=ss, ratio=rl)


def restore_input(x, r, l_hat0, curves, noise=None):
    """(R_in, L_out): what the restoration net starts from and the illumination it is
    multiplied with. The paper: (R, L^0). With tone curves (lumen addition): L_out =
    max(L^0, max-RGB of T(x)) and R_in = T(x) / L_out, the reflectance that the toned image
    implies — so the identity-start restoration net already gives R_in · L_out = T(x), and
    learns denoising and detail on top. R_in is computed from a detached L_out. ``noise``:
    T(x)'s measured noise (``tone_noise``) for its luma denoising; None: none."""
    if curves is None:
        return r, l_hat0
    x_t = toned(x, curves, noise=0.0 if noise is None else noise)
    l_out = lift_illumination(l_hat0, x_t)
    return tone_reflectance(x_t, l_out.detach()), l_out


class KinDPipeline(Pipeline):
    method: ClassVar[str] = "kind"
    size_multiple: ClassVar[int] = 16  # 5-level restoration U-Net (decom needs 4)
    memory_per_pixel: ClassVar[int] = 3072
    presets: ClassVar[dict[str, dict[str, tuple[str, dict[str, Any]]]]] = {
        # decom 235,876 + restore 7,760,739 + adjust 19,393 + ratio 14,547 = 8,030,555
        "paper": _preset(32, _PAPER_RESTORE, 32, residual=False),
        # tone 175,083 + decom 59,316 + restore 1,941,427 + adjust 19,393 + ratio 14,547
        # = 2,209,766
        "lite": _preset(16, _LITE_RESTORE, 32, residual=True, tone=True),
    }
    default_preset: ClassVar[str] = "lite"

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.train.stage import Stage

        return [
            Stage(
                "decomposition",
                trains=("decom",),
                loss=decomposition_loss,
                defaults={
                    "lr": 3e-3,
                    "steps": 1000,
                    "batch_size": 8,
                    "crop": 96,
                    "warmup": 50,
                    "synth_ratio": 0.2,
                },
                validate_full=False,
            ),
            Stage(
                "restoration",
                trains=("restore",),
                uses=("decom",),
                loss=restoration_loss,
                defaults={
                    "lr": 5e-4,
                    "steps": 800,
                    "batch_size": 4,
                    "crop": 192,
                    "synth_ratio": 0.3,
                },
                validate_full=False,
            ),
            Stage(
                "adjustment",
                trains=("adjust", "ratio"),
                uses=("decom",),
                loss=adjustment_loss,
                defaults={
                    "lr": 1e-3,
                    "steps": 400,
                    "batch_size": 8,
                    "crop": None,
                    "resize": 128,
                    "synth_ratio": 0.2,
                },
            ),
            tone_stage(),
            Stage(
                "joint",
                trains=("restore", "adjust", "ratio"),
                uses=("decom", "tone"),
                loss=joint_loss,
                defaults={
                    "lr": 5e-4,
                    "steps": 1500,
                    "batch_size": 4,
                    "resize": 512,  # (near-)whole images: joint_loss crops 256 px after
                    "crop": 512,  # computing the curves and the ratio on the whole picture
                    "synth_ratio": 0.2,
                },
            ),
        ]

    # -- inference ------------------------------------------------------------------------
    def default_ratio(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) default light ratio α0 from the images alone. x: (B,3,H,W) in [0,1], sRGB."""
        small = shrink(x, ANALYZE_SIZE)
        if "ratio" in self.nets:
            log_a = self.nets["ratio"](small).float()
        else:
            lum = small.amax(1).flatten(1).mean(1).clamp_min(1e-3)
            log_a = math.log(TARGET_MEAN_L) - torch.log(lum)
        return torch.exp(log_a).clamp(*ALPHA_RANGE)

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """Whole-image light ratio: {'alpha0': (B,), 'alpha': (B,) = alpha0 · exposure}."""
        with torch.no_grad():
            a0 = self.default_ratio(x.to(self.device))
            curves = curves_for(self.nets, x.to(self.device))
        exposure = 1.0 if opts.exposure is None else float(opts.exposure)
        if not exposure > 0:
            raise ValueError(f"kind: exposure must be > 0, got {exposure}")
        out = {"alpha0": a0, "alpha": (a0 * exposure).clamp(*ALPHA_RANGE)}
        if curves is None:
            return out
        return out | {"curves": curves, "tone_noise": tone_noise(x, curves)}

    def _maps(self, x: torch.Tensor, ctx: dict, opts: EnhanceOptions) -> dict[str, torch.Tensor]:
        r, l = self.nets["decom"](x)
        if "alpha" not in ctx:
            ctx = self.analyze(x, opts, torch.Generator())

        def per_image(a: torch.Tensor) -> torch.Tensor:
            a = a.to(x.device).float().reshape(-1)
            return a.expand(x.shape[0]) if a.numel() == 1 and x.shape[0] > 1 else a

        alpha, curves = per_image(ctx["alpha"]), ctx.get("curves")
        l_hat = self.nets["adjust"](l, alpha).float()
        l_hat0 = l_hat
        relit = curves is not None and not torch.equal(alpha, per_image(ctx["alpha0"]))
        if relit:
            l_hat0 = self.nets["adjust"](l, per_image(ctx["alpha0"])).float()
        if curves is not None:
            curves = curves.to(x.device)
        r_in, l_out = restore_input(x, r, l_hat0, curves, ctx.get("tone_noise"))
        r_hat = self.nets["restore"](r_in, l).float()
        if curves is not None:
            r_hat = anchor_detail(r_hat, r_in, anchor_sigma(opts))
        if relit:  # --exposure: KinD's relighting, as the ratio adjust(L, α) / adjust(L, α0)
            l_hat = l_out * l_hat / l_hat0.clamp_min(1e-3)
        else:
            l_hat = l_out
        return {"reflectance": r.float(), "illumination": l.float(), "r_hat": r_hat, "l_hat": l_hat}

    def enhance(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> torch.Tensor:
        """x: (B,3,h,w) in [0,1] sRGB, h and w multiples of 16 -> (B,3,h,w) in [0,1]."""
        with torch.no_grad():
            m = self._maps(x, ctx, opts)
            r_hat = m["r_hat"]
            extras = {**DEFAULT_EXTRAS, **opts.extra}
            if extras["darken_shadows"]:  # official evaluate.py step
                gray = RL.rgb_to_gray(m["reflectance"])
                k = gaussian_blur(gray, 3.0)
                r_hat = r_hat * torch.clamp(2 * k, 0, 1).sqrt()
            out = highlight_rolloff(r_hat * m["l_hat"], opts.exposure)
            if extras["blend_input"]:  # official evaluate.py step
                out = m["illumination"] * x.float() + (1 - m["illumination"]) * out
            out = out.clamp(0, 1)
            if "tone" in self.nets:  # the tone-prior pipeline (lite)
                out = finish_shadows(x, out, opts)
            return out

    def decompose(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> dict[str, torch.Tensor]:
        """{'reflectance' (B,3,h,w), 'illumination' (B,1,h,w): the decomposition net's maps;
        'reflectance_restored' (B,3,h,w), 'illumination_adjusted' (B,1,h,w)}, all in [0,1]."""
        with torch.no_grad():
            m = self._maps(x, ctx, opts)
        return {
            "reflectance": m["reflectance"].clamp(0, 1),
            "illumination": m["illumination"].clamp(0, 1),
            "reflectance_restored": m["r_hat"].clamp(0, 1),
            "illumination_adjusted": m["l_hat"].clamp(0, 1),
        }
