"""Refusion's training: the auto-encoder stage (latent presets) and the IR-SDE stage.

- ``autoencoder_loss`` (Refusion, Sec. 3.2, "latent replacing"): encode the low and the
  normal-light image; decode the low image's latent with its own skips (reconstruction) and
  the normal-light latent with the *low* image's skips. Both L1 against their images. The
  decoder so learns to render a clean latent with the degraded image's skips, which is how it
  is used after sampling.
- ``sde_loss`` (IR-SDE, eq. 12, the maximum-likelihood objective): draw t ~ U{1..T} and the
  state x_t of the forward SDE from x_0 (normal light) towards mu (the input); the network's
  noise gives a reverse-SDE step; its L1 distance to the optimal reverse step x*_{t-1} (the
  posterior mean given the true x_0) is the loss. In the latent presets x_0 and mu are the
  frozen auto-encoder's latents of the two images.

lumen's ``lite`` preset adds a ``tone`` net (the shared tone prior, ``lumen_cli.prior.tone``,
trained first by the shared ``tone`` stage): the SDE's mean is then the latent of T(low)
instead of low; its latent is the fixed 1/8 block mean (``nets.PoolLatent``, named ``pool``: no
auto-encoder stage), and the noise net predicts x_0 − μ (``prediction="x0"``) with an L1 loss
on that x_0 estimate in place of the maximum-likelihood loss.

Randomness uses torch's global RNG (seeded and checkpointed by the engine).
"""

from __future__ import annotations

import hashlib

import torch

from lumen_cli.diffusion import sde as S

SCHEDULE = S.irsde_schedule(max_sigma=50, T=100, eps=0.005)  # the paper's (both configs)
MEAN_CACHE_BYTES = 1 << 29  # memory bound of ``mean_latents``' cache (per auto-encoder object)
TONE_MARGIN = 16  # px of context around a training crop for T's local filters (chroma, luma)


@torch.no_grad()
def mean_image(nets, low: torch.Tensor) -> torch.Tensor:
    """The image the SDE's mean comes from: T(low) (curves of ``low`` itself, chroma smoothed,
    luma denoised by its measured noise, as at inference) with a ``tone`` net, else low."""
    if "tone" not in nets:
        return low
    from lumen_cli.train.tone_stage import toned_whole

    return toned_whole(nets, low)


def predict(net, x_t, mu, t, sched: S.IRSDESchedule = SCHEDULE):
    """(ε̂, x̂_0 or None) of the noise net at (x_t, μ, t): a ``prediction="x0"`` net's output
    is x̂_0 − μ, from which ε̂ = (x_t − E[x_t | x̂_0]) / σ̄_t; a noise net's output is ε̂."""
    out = net(x_t, mu, t).float()
    if getattr(net, "prediction", "noise") == "noise":
        return out, None
    x0 = mu + out
    return (x_t - S.marginal_mean(x0, mu, sched, t)) / S.marginal_std(sched, t, x_t), x0


def pair(nets, batch, crop: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean image, high) of a batch on one random ``crop`` (px, the same window for the batch;
    None: no crop). With a tone net the mean is T(low) with the curves and noise level of the
    whole loaded images, as at inference (curves of crops differ from the whole photo's:
    benchmarks/NOTES.md); T's local filters see the crop plus TONE_MARGIN px of context, which
    gives the crop of T(whole image)."""
    from lumen_cli.train.tone_stage import crop_together, random_window

    low, high = batch["low"], batch["high"]
    H, W = low.shape[-2:]
    if "tone" not in nets or crop is None or crop >= min(H, W):
        return crop_together(crop, mean_image(nets, low), high)
    from lumen_cli.prior.tone import curves_for, toned

    y, x = random_window(crop, H, W)
    wy0, wx0 = max(0, y - TONE_MARGIN), max(0, x - TONE_MARGIN)
    wy1, wx1 = min(H, y + crop + TONE_MARGIN), min(W, x + crop + TONE_MARGIN)
    with torch.no_grad():
        lowf = low.float()
        curves = curves_for(nets, lowf)
        t = toned(lowf[..., wy0:wy1, wx0:wx1], curves, noise=noise_levels(nets, lowf, curves))
    t = t[..., y - wy0 : y - wy0 + crop, x - wx0 : x - wx0 + crop]
    return t, high[..., y : y + crop, x : x + crop]


def _key(im: torch.Tensor) -> bytes:
    return hashlib.blake2b(im.float().cpu().numpy().tobytes(), digest_size=16).digest()


@torch.no_grad()
def noise_levels(nets, low: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """(B,) ``tone_noise`` of whole training images, memoised per image (by its bytes) on the
    frozen tone net, so each distinct training image is measured once."""
    from lumen_cli.prior.tone import tone_noise

    cache = nets["tone"].__dict__.setdefault("_lumen_noise_cache", {})
    keys = [_key(im) for im in low]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    if todo:
        for i, n in zip(todo, tone_noise(low[todo], curves[todo])):
            cache[keys[i]] = float(n)
    return torch.tensor([cache[k] for k in keys])


def autoencoder_loss(nets, batch, step, w_low: float = 1.0, crop: int | None = None):
    """L1(decode(z_high, hidden_low), high) + w_low L1(decode(z_low, hidden_low), low), with
    T(low) in place of low when the preset has a tone net (``mean_image``); on a ``crop``."""
    low, high = pair(nets, batch, crop)
    rec_low, rec_high = nets["ae"](low, replace_with=high)
    l_high = (rec_high.float() - high).abs().mean()
    l_low = (rec_low.float() - low).abs().mean()
    logs = {"l1_high": float(l_high.detach()), "l1_low": float(l_low.detach())}
    return l_high + w_low * l_low, logs


def latent_net(nets):
    """The auto-encoder of a latent preset: the trained ``ae`` (paper-latent) or the fixed
    ``pool`` (lite, ``nets.PoolLatent``); None for the pixel preset."""
    for name in ("ae", "pool"):
        if name in nets:
            return nets[name]
    return None


@torch.no_grad()
def endpoints(nets, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, x0): the SDE's mean and clean end for a batch: the images (``low`` already the mean
    image, see ``pair``), or with an ``ae`` net (frozen) their latents."""
    ae = latent_net(nets)
    if ae is None:
        return low.float(), high.float()
    z, _ = ae.encode(torch.cat([low, high], 0))
    mu, x0 = z.float().chunk(2, 0)
    return mu, x0


def memoised_latents(ae, name: str, keys: list[bytes], compute, device) -> torch.Tensor:
    """Stack of one latent per key: cached ones from ``ae``'s cache ``name``, the others from
    ``compute(indices)`` (their (n,C,h,w) latents), then cached while the cache holds less
    than MEAN_CACHE_BYTES. The SDE stage's frozen nets make each key's latent fixed."""
    cache = ae.__dict__.setdefault(name, {})
    got = {k: cache[k].to(device) for k in keys if k in cache}
    todo = [i for i, k in enumerate(keys) if k not in got]
    if todo:
        for i, z in zip(todo, compute(todo)):
            got[keys[i]] = z
            if len(cache) * z.numel() * 4 < MEAN_CACHE_BYTES:
                cache[keys[i]] = z.cpu()
    return torch.stack([got[k] for k in keys])


@torch.no_grad()
def mean_latents(nets, ae, low: torch.Tensor) -> torch.Tensor:
    """(B,C,h,w) latents of the mean images of a batch of whole images, ``ae.encode(
    mean_image(low))``, memoised per image by its bytes (``memoised_latents``). The tone prior
    and the auto-encoder are frozen in the SDE stage, so each distinct training image (each
    flip / rotation of it) is toned and encoded once."""
    keys = [_key(im) for im in low]

    def encode(idx):
        return ae.encode(mean_image(nets, low[idx]))[0].float()

    return memoised_latents(ae, "_lumen_mean_cache", keys, encode, low.device)


def luma_matched(high: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``high`` (B,3,H,W) under the one linear-light gain per image that gives it the mean luma
    of ``mean`` (the SDE's mean image, or a block-mean latent of it: the same mean luma)."""
    from lumen_cli.ops.color import luma
    from lumen_cli.prior.tone import match_luma

    if mean.shape[1] != 3:
        raise ValueError("match_luma needs a 3-channel mean image or latent (the lite presets)")
    return match_luma(high.float(), luma(mean.float()).mean((1, 2, 3)))


@torch.no_grad()
def matched_latents(ae, high: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """(B,C,h,w) ``ae.encode(luma_matched(high, mu / ae.latent_scale))`` of whole images,
    memoised per (image, mean) as ``mean_latents`` (matching a whole image's luma takes ten
    full-size passes; each training image and flip meets the same frozen T(x))."""
    keys = [_key(h) + _key(m) for h, m in zip(high, mu)]

    def encode(idx):
        return ae.encode(luma_matched(high[idx], mu[idx] / ae.latent_scale))[0].float()

    return memoised_latents(ae, "_lumen_matched_cache", keys, encode, high.device)


def sde_loss(
    nets,
    batch,
    step,
    sched: S.IRSDESchedule = SCHEDULE,
    crop: int | None = None,
    match_luma: bool = False,
):
    """The maximum-likelihood loss |reverse_step(x_t, eps_hat) - x*_{t-1}|_1 (mean); for an
    x0-predicting net (lite) |x̂_0 − x_0|_1 (mean). t ~ U{1..T}, or U{1..t_max} for a net
    with ``t_max``. On a ``crop`` of the mean image (``pair``);
    latent presets on whole images take the mean's latent from ``mean_latents``' cache.

    ``match_luma`` (lumen addition, mean images of 3 channels: the lite presets): the clean end
    is the normal-light image brought to the mean image's mean luma (``luma_matched``), so the
    net learns local exposure, contrast and colour around the brightness T(x) chose, not the
    brightness of each training reference (a SICE reference's exposure is the bracket frame
    that happened to be chosen, which the low frame does not predict: benchmarks/CEILING.md)."""
    ae, low, high = latent_net(nets), batch["low"], batch["high"]
    if ae is not None and (crop is None or crop >= min(low.shape[-2:])):
        with torch.no_grad():
            mu = mean_latents(nets, ae, low)
            x0 = matched_latents(ae, high, mu) if match_luma else ae.encode(high)[0].float()
    else:
        mean, high = pair(nets, batch, crop)
        mu, x0 = endpoints(nets, mean, luma_matched(high, mean) if match_luma else high)
    b = mu.shape[0]
    t_max = getattr(nets["noise"], "t_max", None) or sched.T
    t = torch.randint(1, t_max + 1, (b,))
    x_t = S.q_sample(x0, mu, sched, t, torch.randn_like(mu))
    eps, x0_hat = predict(nets["noise"], x_t, mu, t.to(mu.device), sched)
    if x0_hat is not None:
        loss = (x0_hat - x0).abs().mean()
        return loss, {"l1_x0": float(loss.detach())}
    pred = S.reverse_sde_mean(x_t, mu, S.score_from_noise(eps, sched, t), sched, t)
    target = S.optimal_reverse_step(x_t, x0, mu, sched, t)
    loss = (pred - target).abs().mean()
    return loss, {"l1": float(loss.detach())}


def stages() -> list:
    """The tone prior (lite only), the autoencoder (latent presets only: the runner skips
    stages whose nets a preset lacks), then the SDE's noise network."""
    from lumen_cli.train.stage import Stage
    from lumen_cli.train.tone_stage import tone_stage

    return [
        tone_stage(),
        Stage(
            "autoencoder",
            trains=("ae",),
            uses=("tone",),
            loss=autoencoder_loss,
            defaults={"lr": 2e-3, "steps": 700, "batch_size": 8, "crop": 96, "warmup": 50},
            validate_full=False,  # the SDE is not trained yet
        ),
        Stage(
            "sde",
            trains=("noise",),
            uses=("ae", "pool", "tone"),
            loss=sde_loss,
            defaults={"lr": 1e-3, "steps": 2000, "batch_size": 4, "crop": 192, "warmup": 50},
        ),
    ]
