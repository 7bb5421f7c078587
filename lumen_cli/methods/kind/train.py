"""KinD's training (Zhang, Zhang, Guo, ACM MM 2019): the paper's three stage losses
(decomposition, restoration, adjustment) plus lumen's ``tone`` and ``joint`` stages.

Stages (``stages()``), in order: decomposition (the paper's loss plus a max-RGB illumination
prior, lumen addition), restoration, adjustment (+ the ratio estimator's log α regression),
``tone`` (the tone prior's curve net, ``lumen_cli.train.tone_stage``) and ``joint`` (lumen
addition: restoration, adjustment and ratio nets fine-tuned end to end on the output R̂·L̂
against I_high, with the predicted α, on 256-pixel crops of whole images whose curves and α
come from the whole picture, as at inference).

Batches: {"low", "high"} (B,3,h,w) float32 in [0,1], sRGB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lumen_cli.methods.kind.pipeline import ALPHA_RANGE, W_IP, restore_input
from lumen_cli.prior.finish import finish_shadows
from lumen_cli.prior.tone import ANCHOR_SIGMA, anchor_detail, curves_for, match_luma, tone_noise
from lumen_cli.retinex import losses as RL
from lumen_cli.train.stage import Stage
from lumen_cli.train.synth import add_sensor_noise
from lumen_cli.train.tone_stage import tone_stage


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
    clamp_anchor: bool = True,
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
    the restoration net learns what those fixed post-steps leave to it.

    ``clamp_anchor``: clamp R̂ to [0, 1] after ``anchor_detail`` as inference does; false
    leaves it unclamped, so a pixel that overshoots still passes a gradient."""
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
        r_hat = anchor_detail(r_hat, r_in, ANCHOR_SIGMA, clamp=clamp_anchor)
    out = r_hat * l_hat
    if post and curves is not None:
        out = finish_shadows(low, out.clamp(0, 1))
    l1 = (out - high).abs().mean()
    ss = _ssim_loss(out, high)
    rl = F.smooth_l1_loss(log_a, target_log_a, beta=0.1)
    return l1 + ss + 0.5 * rl, _logs(l1=l1, ssim=ss, ratio=rl)


def stages() -> list[Stage]:
    """KinD's training stages in the order they run."""
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
