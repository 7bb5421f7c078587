"""Training LightenDiffusion from unpaired photos: stage 1 (CTDN) and stage 2 (LRDM).

Both stages read unpaired batches ``{"low", "normal"}`` (B,3,h,w) in [0,1] sRGB: a low-light
crop and an unrelated normal-light crop. No reference paired with its input is ever used.

**Stage 1, ``ctdn``** (the encoder/decoder and the Retinex decomposition of the latent). The
official repository publishes no code for it; the paper (Sec. 3.2) asks the latent to be
reconstructible and decomposable into R x L. lumen's losses, all L1 unless said:

- reconstruction through the autoencoder of both image kinds: D(E(low), low's skips) ~ low,
  D(E(normal), normal's skips) ~ normal;
- exposure transfer through the skips: a darkened copy ``dark`` of the normal crop (its linear
  light scaled by a log-uniform gain in [1/30, 1/3], mild Gaussian noise, the same picture, so
  not a paired reference of another photo) gives D(E(normal), dark's skips) ~ normal and
  D(E(dark), normal's skips) ~ dark: brightness must come from the latent and only detail from
  the skips, which is how inference uses the decoder (the sampled latent, the low image's skips);
- latent anchor (lumen choice): E(x) ~ 8x8 average of x (clamped to [0.01, 0.99], inside the
  sigmoid's reach), so the latent is a small image and
  R x L is a Retinex product of light, not of an arbitrary code (weight ``w_anchor``); with
  ``anchor_gamma`` the average is taken in linear light and raised to 1/gamma, so a linear
  gain on a frame is an exact common factor on its latent, and with ``anchor_log`` the error is
  measured between logarithms (relative: dark latents are fitted as closely, in ratio);
  the latent is shaped by reconstruction and anchor only (the decomposition terms below see a
  detached latent: letting them pull on it froze the encoder of the residual CTDN);
- Retinex consistency R x L ~ latent (the latent as a fixed target: the decomposition fits
  it, not the reverse) for the three latents, each image's error divided by its mean latent
  + 0.1 so dark latents keep their colour (``w_retinex``);
- illumination smoothness: structure-aware |grad L| / max(|grad latent|, 0.01) (``w_smooth``);
- reflectance consistency between exposures: R(E(normal)) ~ R(E(dark)) (``w_refl``);
- priors towards the CTDN's own initial maps, smoothed: L ~ max-RGB of the latent blurred
  (Gaussian, 2 latent pixels) / 0.6 (rules out L = 1, and keeps L an illumination: with the
  unblurred max-RGB, L carried the scene's structure and stage 2's target R_low x L_normal
  that of the unrelated normal crop) and R ~ latent / that L (rules out the
  exposure-invariant but colourless R = 1 that the reflectance consistency alone rewards);
  the 0.6 keeps R's target off the sigmoid's asymptote (``w_prior``). The prior outweighs
  the reflectance consistency (1 vs 0.1): a darkened sRGB frame's latent does not keep the
  channel ratios exactly, and a strong consistency term is best met by one constant colour
  for R.

With the lite preset the CTDN's heads are residuals around those initial maps (``nets``), so
the decomposition starts exposure-invariant and the terms above train a correction.

**Stage 2, ``lrdm``** (the latent-Retinex diffusion model, paper Sec. 3.3, as the official
``Net.forward``): the frozen CTDN gives z_low, (R_low, L_low) and L_normal; the U-Net learns
eps for x0 = 2 R_low L_normal - 1 conditioned on 2 z_low - 1 (timesteps drawn antithetically,
t and T-1-t, as the official code; an x0-predicting U-Net, ``pred = "x0"``, learns x0 itself
by the same mean squared error), plus the self-constrained consistency loss
0.001 * |DDIM(cond) - R_low L_low^0.2|_1 with gradients through the sampler. The official code
samples that DDIM with the inference step count (20); ``scc_steps`` sets it (lite: off, for
CPU cost; the term's weight is small either way). With ``relight`` = gamma (lumen option) the
target's illumination is not an unrelated normal crop's L (whose structure stage 2 would paint
into the output) but the low image's own L^gamma, scaled so that the target's mean equals the
normal crops' mean latent (or a fixed ``level``: the lite recipe's, the mean latent anchor of all
its normal frames), times the Retinex quotient z_low / L_low (``relit_target``). Only the
product is clipped at 1, not L (clipping L flattened every bright area of the target).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lumen_cli.diffusion import ddpm
from lumen_cli.methods.lighten_diffusion.pipeline import (
    T_TRAIN,
    sample_latent,
    schedule,
    unet_pred,
)
from lumen_cli.retinex import losses as RL


def darken(x: torch.Tensor, gain=(1 / 30, 1 / 3), noise=(0.0, 0.02), return_gain: bool = False):
    """A darker exposure of x (B,3,H,W) sRGB in [0,1]: linear light times a per-image gain,
    log-uniform in ``gain``, plus Gaussian noise of sigma uniform in ``noise`` (sRGB units).
    Torch's global RNG. ``return_gain``: also return the gains (B,1,1,1)."""
    from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear

    b = x.shape[0]
    u = torch.rand(b, 1, 1, 1, device=x.device)
    g = torch.exp(math.log(gain[0]) + u * (math.log(gain[1]) - math.log(gain[0])))
    d = linear_to_srgb((srgb_to_linear(x.clamp(0, 1)) * g).clamp(0, 1))
    s = noise[0] + torch.rand(b, 1, 1, 1, device=x.device) * (noise[1] - noise[0])
    d = (d + s * torch.randn_like(d)).clamp(0, 1)
    return (d, g) if return_gain else d


def vary_colour(x: torch.Tensor, p: float, saturation: float = 1.0) -> torch.Tensor:
    """x (B,3,H,W) sRGB in [0,1] with, per image and with probability ``p``, its RGB channels
    in a random order and its saturation scaled in linear light by a log-uniform factor in
    [1, ``saturation``] (the luma Y kept: Y + s (x - Y), clipped to [0, 1]). The unpaired
    frames hold few saturated colours of most hues; seeing them re-coloured keeps the
    autoencoder (and the latent diffusion) from pulling every hue towards the frames' usual
    ones. Torch's global RNG."""
    if p <= 0:
        return x
    from lumen_cli.ops.color import linear_to_srgb, luma, srgb_to_linear

    b = x.shape[0]
    on = torch.rand(b) < p
    if not bool(on.any()):
        return x
    perm = torch.stack([torch.randperm(3) for _ in range(b)])
    perm[~on] = torch.arange(3)
    out = torch.stack([x[i, perm[i]] for i in range(b)])
    if saturation > 1:
        lin = srgb_to_linear(out.clamp(0, 1))
        y = luma(lin)
        u = torch.rand(b, 1, 1, 1, device=x.device) * on.view(b, 1, 1, 1).to(x.device)
        s = torch.exp(u * math.log(saturation))
        out = linear_to_srgb((y + s * (lin - y)).clamp(0, 1))
    return out.to(x.dtype)


def latent_anchor(x: torch.Tensor, gamma: float | None = 2.2) -> torch.Tensor:
    """The small image the encoder's latent is pulled towards, for x (B,3,H,W) sRGB in [0,1]:
    the 8x8 average of x's linear light to the power 1/``gamma`` (None: the 8x8 average of
    the sRGB values), clamped to [0.01, 0.99] (inside the sigmoid's reach). With a power law
    a linear-light gain k on x scales the anchor by exactly k^(1/gamma), so R = z / L of a
    darker exposure of the same frame equals the brighter one's (sRGB's linear toe would
    darken the shadows of very dark frames more than the rest)."""
    if gamma is None:
        return F.avg_pool2d(x, 8).clamp(0.01, 0.99)
    from lumen_cli.ops.color import srgb_to_linear

    lin = F.avg_pool2d(srgb_to_linear(x.clamp(0, 1)), 8)
    return lin.clamp_min(1e-8).pow(1 / gamma).clamp(0.01, 0.99)


def retinex_terms(r, lum, z, headroom: float = 0.6, sigma: float = 2.0):
    """(relative |R L - z|, smoothness of L guided by z, priors) for latents z (B,3,h,w) and
    their decomposition (R, L). The priors pull (R, L) towards ``nets.prior_maps``: L towards
    the max-RGB of z blurred (Gaussian ``sigma`` latent pixels) / ``headroom`` (at most 1), a
    smooth illumination as in LIME, and R towards z / that L: the CTDN's own initial maps,
    smoothed, and scaled so R's target stays off the sigmoid's asymptote 1 (aimed at exactly,
    the logits grow until R saturates to a colourless constant)."""
    from lumen_cli.methods.lighten_diffusion.nets import prior_maps

    l1 = lum[:, :1]
    z = z.detach()  # the decomposition fits the latent, not the other way round
    err = (r * l1 - z).abs().mean((1, 2, 3)) / (z.mean((1, 2, 3)) + 0.1)
    r_target, l_target = prior_maps(z.float(), headroom, sigma)
    prior = (l1 - l_target).abs().mean() + (r - r_target).abs().mean()
    return err.mean(), RL.illumination_smoothness(l1, z), prior


def ctdn_loss(
    nets,
    batch,
    step,
    w_anchor: float = 1.0,
    w_retinex: float = 0.5,
    w_smooth: float = 0.2,
    w_refl: float = 0.1,
    w_prior: float = 1.0,
    anchor_gamma: float | None = None,
    anchor_log: bool = False,
    gain=(1 / 30, 1 / 3),
    colour_p: float = 0.0,
    colour_sat: float = 1.0,
    w_bright: float = 0.0,
    bright_sensor: float = 0.0,
    bright_jpeg: tuple[int, int] | None = None,
):
    """Stage 1 loss (see the module docstring). ``anchor_gamma``: see ``latent_anchor``;
    ``anchor_log``: compare latent and anchor as logarithms (a relative error: a dark
    frame's latent is then fitted as closely, in ratio, as a bright one's, so R = z / L of two
    exposures can agree); ``gain``: the linear-light gain range of the darker exposure;
    ``colour_p``, ``colour_sat``: ``vary_colour`` of the low and normal crops; ``w_bright``:
    weight of the bright-skips transfer D(E(normal), skips of the dark copy brought back by
    the inverse gain, after 8-bit rounding) ~ normal, the decoder's input at inference with
    bright skips (a noisy, brightened dark photo's pyramid), so it learns to render a clean
    picture from it. The dark copy of that term gets, before its 8-bit rounding, the
    Poisson-Gaussian sensor noise of ``train.synth.add_sensor_noise`` with probability
    ``bright_sensor``, and with ``bright_jpeg`` = (lo, hi) a JPEG round trip of quality
    uniform in [lo, hi] (``train.synth.jpeg_roundtrip``) instead of the rounding: the noise and
    the block artifacts of a real dim JPEG, which the brightening amplifies."""
    decom = nets["decom"]
    low = vary_colour(batch["low"], colour_p, colour_sat)
    normal = vary_colour(batch["normal"], colour_p, colour_sat)
    dark, k = darken(normal, gain=tuple(gain), return_gain=True)
    x = torch.cat([low, normal, dark])
    z, skips = decom.encode(x)
    z_n, z_d = z[low.shape[0] :].chunk(2)
    sk_n, sk_d = zip(*(s[low.shape[0] :].chunk(2) for s in skips), strict=True)
    # reconstruction (own skips) and exposure transfer (the other exposure's skips)
    rec = decom.decode(z, skips)
    swap = decom.decode(torch.cat([z_n, z_d]), [torch.cat(p) for p in zip(sk_d, sk_n)])
    l_rec = (rec - x).abs().mean() + (swap - torch.cat([normal, dark])).abs().mean()
    logs = {}
    if w_bright > 0:
        from lumen_cli.methods.lighten_diffusion.pipeline import apply_exposure
        from lumen_cli.train.synth import add_sensor_noise, jpeg_roundtrip

        degraded = add_sensor_noise(dark, p=bright_sensor) if bright_sensor > 0 else dark
        if bright_jpeg:
            degraded = jpeg_roundtrip(degraded, tuple(bright_jpeg))
        else:
            degraded = torch.round(degraded * 255) / 255
        lifted = apply_exposure(degraded, 1 / k)
        out = decom.decode(z_n, decom.encode(lifted)[1])
        l_bright = (out - normal).abs().mean()
        l_rec = l_rec + w_bright * l_bright
        logs["bright"] = l_bright
    anchor = latent_anchor(x, anchor_gamma)
    if anchor_log:
        l_anchor = (z.clamp_min(1e-4).log() - anchor.log()).abs().mean()
    else:
        l_anchor = (z - anchor).abs().mean()
    r, lum = decom.retinex(z.detach())  # the latent is made by reconstruction and anchor only
    l_ret, l_smooth, l_prior = retinex_terms(r, lum, z)
    r_n, r_d = r[low.shape[0] :].chunk(2)
    l_refl = (r_n - r_d).abs().mean()
    loss = (
        l_rec
        + w_anchor * l_anchor
        + w_retinex * l_ret
        + w_smooth * l_smooth
        + w_refl * l_refl
        + w_prior * l_prior
    )
    logs |= {"rec": l_rec, "anchor": l_anchor, "ret": l_ret, "smooth": l_smooth, "refl": l_refl}
    logs["r_std"] = r.detach().std()
    return loss, {k: float(v.detach()) for k, v in logs.items()}


def relit_target(z_low, l_low, level, gamma: float = 1.0, iters: int = 8):
    """Stage 2's relit target (lumen option): the low latent z_low (B,3,h,w) with its
    illumination l_low (the CTDN's L) replaced by s L^gamma, i.e. the Retinex quotient
    R = z_low / L (as LIME's R = I / T, Guo et al., TIP 2017) times the new illumination:
    min(s z_low L^(gamma - 1), 1), s per image so that its mean equals ``level`` (a scalar:
    the mean latent of the unrelated normal-light crops; fixed-point updates of s from the
    unclipped solution, only the product is clipped). Only a brightness statistic of the normal
    frames enters, none of their structure. gamma 1 is a common gain on the latent, which undoes
    a linear-light exposure change (the latent is a power law of linear light); gamma < 1
    compresses the low image's illumination contrast as LIME's gamma on T does. The quotient,
    not the CTDN's own R, is used: R x L only approximates the latent."""
    zg = z_low * l_low[:, :1].clamp_min(1e-3).pow(gamma - 1.0)
    s = level / zg.mean((1, 2, 3), keepdim=True).clamp_min(1e-4)
    for _ in range(iters):  # the clip lowers the mean: raise s until it is back at the level
        s = s * level / (s * zg).clamp(max=1.0).mean((1, 2, 3), keepdim=True).clamp_min(1e-4)
    return (s * zg).clamp(max=1.0)


def consistency_loss(pred: torch.Tensor, r_low: torch.Tensor, l_low: torch.Tensor, gamma=0.2):
    """The self-constrained consistency term: mean |pred - R_low L_low^gamma| (unweighted)."""
    return (pred - r_low * l_low.clamp_min(1e-6).pow(gamma)).abs().mean()


def lrdm_loss(
    nets,
    batch,
    step,
    scc_steps: int = 20,
    w_scc: float = 1e-3,
    relight: float | None = None,
    level: float | None = None,
    colour_p: float = 0.0,
    colour_sat: float = 1.0,
):
    """Stage 2 loss: noise (or x0) MSE + w_scc * consistency (see the module docstring).
    ``relight``: None, the target is R_low x L_normal (paper); a number gamma,
    ``relit_target`` (the low latent's own L^gamma at the normal crops' level). ``level``
    (with ``relight``): that level as a fixed number (e.g. the mean ``latent_anchor`` of all
    the normal frames) instead of the mean latent of the batch's normal crops, which varies
    from batch to batch: the sampled brightness then converges to one target instead of
    wandering with the last batches' levels. ``colour_p``, ``colour_sat``: ``vary_colour`` of
    the low crops."""
    decom, unet = nets["decom"], nets["unet"]
    low, normal = vary_colour(batch["low"], colour_p, colour_sat), batch["normal"]
    with torch.no_grad():
        z, _ = decom.encode(torch.cat([low, normal]))
        r, lum = decom.retinex(z)
        b = low.shape[0]
        z_low, r_low, l_low, l_n = z[:b], r[:b], lum[:b], lum[b:]
        if relight is None:
            target = r_low * l_n
        else:
            lvl = z[b:].float().mean() if level is None else float(level)
            target = relit_target(z_low.float(), l_low.float(), lvl, relight)
        cond = 2 * z_low.float() - 1
        x0 = 2 * target.float() - 1
    a_bar = schedule().to(x0.device)
    t = torch.randint(0, T_TRAIN, (b // 2 + 1,), device=x0.device)
    t = torch.cat([t, T_TRAIN - t - 1])[:b]
    e = torch.randn_like(x0)
    x_t = ddpm.q_sample(x0, t, a_bar, e)
    out = unet(torch.cat([cond, x_t], 1), t.float()).float()
    key = "x0" if unet_pred(unet) == "x0" else "noise"
    l_noise = (out - (x0 if key == "x0" else e)).pow(2).mean()
    loss, logs = l_noise, {key: float(l_noise.detach())}
    if w_scc > 0 and scc_steps > 0:
        pred = sample_latent(unet, cond, torch.randn_like(x0), scc_steps).float()
        l_scc = consistency_loss(pred, r_low.float(), l_low.float())
        loss = loss + w_scc * l_scc
        logs["scc"] = float(l_scc.detach())
    return loss, logs


def stages() -> list:
    from lumen_cli.train.stage import Stage

    return [
        Stage(
            "ctdn",
            ("decom",),
            ctdn_loss,
            data="unpaired",
            validate_full=False,
            # fp32: the decomposition divides by the latent's channel maximum
            defaults={"steps": 3000, "lr": 5e-4, "crop": 128, "batch_size": 4, "precision": "fp32"},
        ),
        Stage(
            "lrdm",
            ("unet",),
            lrdm_loss,
            uses=("decom",),
            data="unpaired",
            defaults={"steps": 6000, "lr": 2e-4, "crop": 256, "batch_size": 8, "val_steps": 20},
        ),
    ]
