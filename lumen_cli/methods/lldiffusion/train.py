"""LLDiffusion's joint training (Wang et al., Pattern Recognition 2025, Sec. 3.3) as stages of
the shared trainer.

``joint_loss`` on a batch of pairs (low, high) in [0,1]:

    feats  = encoder(2 low - 1)
    noise  ~ N(0, I), t ~ U{0..999}, x_t = sqrt(a_t) (2 high - 1) + sqrt(1 - a_t) noise
    L_diff = || eps - denoiser(cat(x_t, cond, colour map), t, feats) ||^2      (paper presets)
    L_deg  = || generator(2 high - 1, feats) - (2 low - 1) ||_1                (same features)
    loss   = L_diff + image_weight * L_deg                                      (weight 0.1)

The generator must turn the normal-light image into the low-light one from the features
alone, so the features have to describe the degradation (darkness, noise, colour shift).
From step ``freeze_step`` on, the encoder is frozen and only L_diff remains (the official
``fix_epoch``). Official noise loss: sum over pixels; here the mean (a constant factor that
Adam's step size absorbs, but that changes the balance with L_deg; with the mean, 0.1 weighs
the two terms as the paper's ablation intends, both being per-pixel averages).

In the ``lite`` preset the denoiser predicts x0 as a residual on the tone prior's T(low)
(``pipeline.lite_model``), so L_diff is the L1 error of that x0 estimate, and a ``tone``
stage (shared with kind / diff-retinex) trains the tone curves first. ``lite-plain`` (no tone
net) predicts x0 itself, with the same L1.
"""

from __future__ import annotations

import torch

from lumen_cli.methods.lldiffusion import sampling as S
from lumen_cli.methods.lldiffusion.nets import colour_map

FREEZE_STEP = 2000  # lite default; the official LOL config freezes after 40000 epochs


def _diffusion_term(nets, low, high, feats, anchor: float, base=None, clamp: bool = True):
    """(L_diff, x0 estimate in [-1,1]) for a batch, paper (eps) or lite (x0 on ``base`` =
    T(low) in [0,1]; None for lite-plain, which has no tone prior)."""
    den = nets["denoiser"]
    cond, x0 = low * 2 - 1, high * 2 - 1
    b = x0.shape[0]
    a_bar = S.schedule().to(x0.device)
    t = torch.randint(0, S.T_TRAIN, (b,), device=x0.device)
    a = a_bar[t].view(b, 1, 1, 1)
    noise = torch.randn_like(x0)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    if getattr(den, "prediction", "eps") != "x0":
        eps = den(torch.cat([x_t, cond, colour_map(cond)], 1), t.float(), feats)
        return (eps - noise).pow(2).mean(), (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    from lumen_cli.methods.lldiffusion.pipeline import lite_model

    base = None if base is None else base * 2 - 1
    model = lite_model(nets["encoder"], den, cond, base, a_bar, anchor, feats=feats, clamp=clamp)
    eps = model(x_t, t)
    x0_hat = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    return (x0_hat - x0).abs().mean(), x0_hat


def joint_loss(
    nets,
    batch,
    step,
    freeze_step: int = FREEZE_STEP,
    image_weight: float = 0.1,
    anchor: float | None = None,
    crop: int | None = None,
    clamp_x0: bool = True,
    sensor_noise: float = 0.0,
):
    """The joint loss (module docstring); after ``freeze_step`` the noise term alone, with
    the encoder run without gradients. ``anchor``: σ of the lite x0 anchor (None: the
    denoiser's own, ``pipeline.anchor_of``). ``crop``: the batch holds whole images; the
    tone curves and T's noise level are measured on them, then every term runs on one random
    ``crop`` px window, with T(window) made from those whole-image measurements, as the
    pipeline makes T of a tile (None: T of the batch's images as they come). ``clamp_x0``
    false: the lite anchored x0 is compared unclamped (a clamped pixel passes no gradient).
    ``sensor_noise`` p: each low image gets, with probability p, Poisson-Gaussian sensor noise
    (``train.synth.add_sensor_noise``) before anything is measured on it, while its reference
    stays clean: the features must then describe the noise, and the denoiser remove it."""
    from lumen_cli.methods.lldiffusion.pipeline import anchor_of
    from lumen_cli.prior.tone import curves_for, tone_noise, toned
    from lumen_cli.train.tone_stage import crop_together

    low, high = batch["low"].float(), batch["high"].float()
    if sensor_noise > 0:
        from lumen_cli.train.synth import add_sensor_noise

        low = torch.round(add_sensor_noise(low, p=sensor_noise) * 255) / 255  # in [0,1]
    lite_toned = "tone" in nets and getattr(nets["denoiser"], "prediction", "eps") == "x0"
    with torch.no_grad():  # T's curves and noise level, from the images as loaded
        curves = curves_for(nets, low) if lite_toned else None
        noise = tone_noise(low, curves) if lite_toned else None
    if crop is not None:
        low, high = crop_together(crop, low, high)
    with torch.no_grad():
        base = toned(low, curves, noise=noise) if lite_toned else None
    frozen = step >= freeze_step
    with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
        feats = nets["encoder"](low * 2 - 1)
    if frozen:
        feats = [f.detach() for f in feats]
    sigma = anchor_of(nets["denoiser"]) if anchor is None else anchor
    l_diff, _ = _diffusion_term(nets, low, high, feats, sigma, base, clamp_x0)
    logs = {"diff": float(l_diff.detach()), "frozen": float(frozen)}
    if frozen:
        return l_diff, logs
    fake_low = nets["generator"](high * 2 - 1, None, feats)
    l_deg = (fake_low - (low * 2 - 1)).abs().mean()
    logs["deg"] = float(l_deg.detach())
    return l_diff + image_weight * l_deg, logs


def stages() -> list:
    """[tone (lite only: the trainer skips it for presets without a tone net), joint]."""
    from lumen_cli.train.stage import Stage
    from lumen_cli.train.tone_stage import tone_stage

    return [
        tone_stage(),
        Stage(
            "joint",
            ("encoder", "denoiser", "generator"),
            joint_loss,
            uses=("tone",),
            defaults={
                "steps": 4000,
                "lr": 5e-4,
                "crop": 128,
                "batch_size": 8,
                "val_every": 500,
                "ddp_find_unused": True,  # the generator is idle after the freeze
            },
        ),
    ]
