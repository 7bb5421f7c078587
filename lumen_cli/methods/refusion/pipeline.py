"""Refusion / IR-SDE (Luo et al., ICML 2023; Refusion, CVPRW 2023) as a lumen pipeline.

The degraded photo is the mean mu of a mean-reverting SDE; sampling starts at mu + lambda z and
runs the SDE backwards to the clean image (``lumen_cli.diffusion.sde``). Recipe for one image
x (1,3,H,W) in [0,1], sRGB::

    latent presets (lite, lite-input: the fixed net "pool" in place of "ae"; paper-latent):
      analyze (whole image):
        0. lite: curves = tone(x), m(.) = T(.) with them   # lumen's tone prior; else m(x) = x
        1. mu   = ae.encode(m(x)).latent              # 1/8 size; in row strips when local
        2. x_T  = mu + lambda z,  z from the CPU generator (--seed)
        3. z_0  = reverse SDE / ODE / posterior sampler on the whole latent, N steps
      per tile:
        4. hidden = ae.encode(m(window)).hidden       # the skips of the (toned) input
        5. out    = ae.decode(z_0[window], hidden)     # window: the tile plus a margin, aligned
                    (lite: m(window) + upsampled change of the latent)
    pixel presets (paper; lite-pixel, lite-pixel-input), per tile:
      window = the tile grown to the net's stride grid (``aligned_window``)
      mu     = m(window)                             # lite-pixel: T(window), whole-image curves
      x_s    = mu + lambda z  (s = T), or mu + sigma_bar_s z from a net's t_max = s < T
      sampler on the window, from s to 0; z and every step's noise are the window's crop of
      whole-image noise (``tiling.region_noise``); crop the tile
    6. --exposure: linear-light gain of the output, highlights rolled off; clamp to [0,1].

Presets: ``paper`` is the official pixel model (deshadow ConditionalNAFNet, 76.6 M parameters),
``paper-latent`` the official latent model (NAFNet on 8-channel latents, 76.6 M, plus the
2.0 M auto-encoder); both load converted official checkpoints (``lumen weights convert
refusion``). ``lite`` (lumen's, trained here on SICE) adds two things to the latent model:
the SDE's mean is the latent of the tone prior's image T(x) (``lumen_cli.prior.tone``,
whole-image curves; the paper's mu is the degraded input), and the latent is the fixed 8 x 8
block mean of the image (``nets.PoolLatent``, no parameters): decoding adds the sampled
latent's change, upsampled, to T(x), so the SDE (a width-16 NAFNet predicting x_0 - mu,
``train.predict``) corrects T(x)'s local exposure and colour. A local, parameter-free encoder:
the latent of a large photo is encoded in strips and decoded per tile; the SDE runs on the
whole picture at 1/8 size, so tiles agree with the untiled run. ``lite-input`` is the same
without the tone prior (mu = the input's block means): the ablation. (The first refusion-lite
file, mu = x with a learned auto-encoder and the paper's noise prediction, still loads: files
carry their nets' configurations.) ``lite-pixel`` (lumen's) is the pixel model with that same
mean T(x): the NAFNet sees the image behind a 2 x 2 pixel-unshuffle stem, so it can restore
detail and noise, not only local exposure; it is trained on timesteps 1..t_max and its
reverse process starts at t_max (a truncated reverse process: the forward marginal at t_max of
a clean image near mu). ``lite-pixel-input`` is the same with mu = x (the ablation).

``opts.extra["sampler"]``: ``sde`` (Euler–Maruyama, the paper's), ``ode`` or ``posterior``;
``opts.steps``: evenly spaced steps out of T = 100 (``DEFAULT_SAMPLER``; ``default_steps``
LITE_STEPS = 5 for the lite presets' x0-predicting net, NOISE_STEPS = 20 for noise nets).
``opts.extra["start"]``: the timestep the reverse process starts from (default: the net's
``t_max``, else T); the steps are spaced evenly below it.
``opts.extra["stop"]`` (diagnostics, to measure what each part adds): ``"mean"`` returns the
image the SDE's mean is encoded from (T(x) in lite, x otherwise) and ``"autoencoder"`` decodes
the mean's own latent (no sampling).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lumen_cli import tiling
from lumen_cli.diffusion import sde as S
from lumen_cli.errors import UsageError
from lumen_cli.methods.refusion.presets import PRESETS
from lumen_cli.methods.refusion.windows import (
    MARGIN,
    aligned_window,
    crop_window,
    encode_latent,
    same_image,
)
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, srgb_gain
from lumen_cli.prior.finish import highlight_rolloff

DEFAULT_SAMPLER = "posterior"
LITE_STEPS = 5  # default steps of the lite presets' x0-predicting net (chosen on sice/train)
NOISE_STEPS = 20  # default steps of a noise-predicting net (paper presets, the first lite file)


def apply_exposure(out: torch.Tensor, exposure: float | None) -> torch.Tensor:
    """Output times a linear-light gain (sRGB ~ gamma 2.2), highlights rolled off at the sRGB
    gain that it implies (values reach e^(1/2.2), mapped to 1), as kind's; [0,1]."""
    if exposure is None or float(exposure) == 1.0:
        return out.clamp(0, 1)
    lifted = out.float().clamp(0, 1) ** 2.2 * float(exposure)
    return highlight_rolloff(lifted ** (1 / 2.2), srgb_gain(exposure)).clamp(0, 1)


class RefusionPipeline(Pipeline):
    method: ClassVar[str] = "refusion"
    size_multiple: ClassVar[int] = 16
    default_steps: ClassVar[int | None] = LITE_STEPS
    presets: ClassVar[dict[str, dict[str, tuple[str, dict[str, Any]]]]] = PRESETS
    default_preset: ClassVar[str] = "lite"
    memory_per_pixel: ClassVar[int] = 4096
    parallel_tiles: ClassVar[bool] = False  # two tiles at once: no faster at 12 MP (NOTES)
    min_overlap: ClassVar[int] = 32
    decomposes: ClassVar[bool] = False  # it overrides decompose only to say so
    schedule: ClassVar[S.IRSDESchedule] = S.irsde_schedule(50, 100, 0.005)

    def __init__(self, nets=None):
        super().__init__(nets)
        noise = self.nets["noise"] if "noise" in self.nets else None
        if noise is not None and getattr(noise, "prediction", "noise") != "x0":
            self.default_steps = NOISE_STEPS
        if noise is not None and not self.latent:  # tiles on the pixel net's stride grid
            self.size_multiple = max(self.size_multiple, noise.multiple)

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.methods.refusion.train import stages

        return stages()

    @property
    def latent(self) -> bool:
        return self.ae is not None

    @property
    def ae(self):
        """The latent presets' auto-encoder (learned ``ae`` or fixed ``pool``), else None."""
        from lumen_cli.methods.refusion.train import latent_net

        return latent_net(self.nets)

    def _settings(self, opts: EnhanceOptions) -> tuple[str, int, int]:
        """(sampler, steps, start): ``start`` is the timestep the reverse process starts from,
        ``opts.extra["start"]``, else the noise net's ``t_max`` (lite-pixel), else T."""
        T = self.schedule.T
        sampler = str(opts.extra.get("sampler") or DEFAULT_SAMPLER)
        if sampler not in S.SAMPLERS:
            raise UsageError(f"refusion: unknown sampler {sampler!r}; one of {S.SAMPLERS}")
        steps = int(opts.steps or self.default_steps)
        if not 1 <= steps <= T:
            raise UsageError(f"refusion: steps must be in 1..{T}, got {steps}")
        net = self.nets["noise"] if "noise" in self.nets else None
        start = int(opts.extra.get("start") or getattr(net, "t_max", None) or T)
        if not 1 <= start <= T:
            raise UsageError(f"refusion: start must be in 1..{T}, got {start}")
        if opts.exposure is not None and not float(opts.exposure) > 0:
            raise UsageError(f"refusion: exposure must be > 0, got {opts.exposure}")
        return sampler, steps, start

    def _run_sde(self, mu, noise_fn, ctx: dict, opts) -> torch.Tensor:
        """The reverse process from x_start = μ + noise (``S.start_state``; ``noise_fn(0)``
        its noise, ``noise_fn(i + 1)`` step i's) to t = 0 in ``ctx["steps"]`` steps."""
        from lumen_cli.methods.refusion.train import predict

        net, start = self.nets["noise"], ctx["start"]

        def model_fn(x_t: torch.Tensor, t: int) -> torch.Tensor:
            return predict(net, x_t, mu, t, self.schedule)[0]

        def report(i: int, n: int, _x) -> None:
            opts.report("sampling", i, n)

        x = S.start_state(mu, self.schedule, noise_fn(0), start)
        ts = S.timesteps(start, ctx["steps"])
        step_noise = lambda i: noise_fn(i + 1)  # noqa: E731
        return S.sample(model_fn, x, mu, self.schedule, ts, ctx["sampler"], step_noise, report)

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """{'image', 'sampler', 'steps', 'start'} and, latent: 'latent' (the sampled z_0 of the
        whole image); pixel: 'seed' of the whole-image noises (``tiling.region_noise``)."""
        sampler, steps, start = self._settings(opts)
        ctx: dict[str, Any] = {"image": x, "sampler": sampler, "steps": steps, "start": start}
        if "tone" in self.nets:  # lite: the tone prior's curves and T(x)'s noise level
            from lumen_cli.prior.tone import curves_for, tone_noise

            with torch.no_grad():
                curves = curves_for(self.nets, x.to(self.device).float())
                ctx.update(curves=curves, tone_noise=tone_noise(x, curves))
        if not self.latent:
            ctx["seed"] = int(torch.randint(0, 2**62, (1,), generator=generator))
            return ctx
        with torch.no_grad():
            # 1. the degraded image's latent: the SDE's mean
            mu = encode_latent(self.ae, x.to(self.device), self._mean_fn(ctx)).float()

            # 2. x_T = mu + lambda z, every noise drawn on the CPU from the run's generator
            def draw(_i: int = 0) -> torch.Tensor:
                return torch.randn(mu.shape, generator=generator).to(mu.device)

            # 3. the reverse process on the whole latent
            if opts.extra.get("stop") == "autoencoder":  # diagnostics: no SDE, z_0 = mu
                ctx["latent"] = mu
            else:
                ctx["latent"] = self._run_sde(mu, draw, ctx, opts)
        return ctx

    def _mean_fn(self, ctx: dict):
        """The local map m from image to the image the SDE's mean is encoded from: the tone
        prior's T with the whole image's curves and noise level (lite), else the identity."""
        if "curves" not in ctx:
            return same_image
        from lumen_cli.prior.tone import toned

        def m(img: torch.Tensor) -> torch.Tensor:
            with torch.autocast(img.device.type, enabled=False):  # T(x) in fp32
                return toned(img.float(), ctx["curves"].to(img.device), noise=ctx["tone_noise"])

        return m

    def _decode_region(self, x: torch.Tensor, ctx: dict, region: Region) -> torch.Tensor:
        """Steps 4-5: decode the sampled latent over ``region`` with the skips of a window
        (the region plus MARGIN, on the latent grid) of the degraded image."""
        ae, full = self.ae, ctx["image"]
        f = ae.multiple // 2
        wy0, wx0, wy1, wx1 = win = aligned_window(region, full.shape[-2:], ae.multiple, MARGIN)
        window = tiling.extract(full, *win).to(x.device, torch.float32)
        window = self._mean_fn(ctx)(window)
        _, hidden = ae.encode(window)
        z = ctx["latent"][..., wy0 // f : wy1 // f, wx0 // f : wx1 // f].to(x.device)
        out = ae.decode(z.to(hidden[0].dtype), hidden, base=window).float()
        return crop_window(out, win, region, full.shape[-2:])

    def _sample_pixels(self, x: torch.Tensor, ctx: dict, region: Region, opts) -> torch.Tensor:
        """The pixel model on one tile, run on the tile's window grown to the net's stride grid
        (``aligned_window``: its strided levels then see the blocks of the whole-image run).
        mu = the window's mean image (T(x) with a tone net, else x); the start and per-step
        noises are the window's crop of whole-image noise (``tiling.region_noise``)."""
        full = ctx["image"]
        win = aligned_window(region, full.shape[-2:], self.nets["noise"].multiple)
        window = tiling.extract(full, *win).to(x.device, torch.float32)
        b = x.shape[0]

        def noise(i: int) -> torch.Tensor:
            z = tiling.region_noise(ctx["seed"], i, win, full.shape[-2:], window.shape[1])
            return z.to(x.device).expand(b, -1, -1, -1)

        mu = self._mean_fn(ctx)(window).float().expand(b, -1, -1, -1)
        out = self._run_sde(mu, noise, ctx, opts)
        return crop_window(out, win, region, full.shape[-2:])

    def enhance(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> torch.Tensor:
        """x: (B,3,h,w) in [0,1] sRGB (h, w multiples of 16) -> (B,3,h,w) in [0,1]."""
        if "sampler" not in ctx:  # called without the runner: the tile is the whole image
            ctx = {**self.analyze(x, opts, torch.Generator().manual_seed(opts.seed)), **ctx}
        with torch.no_grad():
            if opts.extra.get("stop") == "mean":  # diagnostics: the SDE's mean image itself
                out = self._mean_fn(ctx)(x)
            elif self.latent:
                out = self._decode_region(x, ctx, region)
            else:
                out = self._sample_pixels(x, ctx, region, opts)
            return apply_exposure(out, opts.exposure)

    def decompose(self, x, ctx, region, opts):
        """Refusion has no Retinex decomposition: a UsageError naming the methods that have."""
        raise UsageError(
            "refusion restores the image directly (a mean-reverting SDE) and has no Retinex "
            f"decomposition; methods that decompose: {', '.join(decomposing_methods())}"
        )


def decomposing_methods() -> list[str]:
    """Registered methods whose pipeline implements ``decompose``."""
    from lumen_cli.pipelines import registry

    out = []
    for name, info in registry.METHODS.items():
        cls = info.load_class()
        if cls.decomposes:
            out.append(name)
    return out
