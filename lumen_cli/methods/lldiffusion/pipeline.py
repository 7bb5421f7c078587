"""LLDiffusion (Wang et al., Pattern Recognition 2025) as a lumen pipeline.

Recipe for one tile x (B,3,h,w) in [0,1] sRGB (``paper`` / ``paper-v2``: the official test)::

    cond   = 2 pad(x) - 1                     # official pad: +1..32 px right/bottom, reflect
    feats  = encoder(whole padded image)      # degradation features, in analyze; cut per tile
    x_T    = noise[region]                    # drawn for the whole image in ``analyze``
    for (t, t_next) in 960 -> 920 ... 0 -> -1:
        eps    = denoiser(cat(x_t, cond, colour_map(cond)), t, feats)
        x_next = DDIM(eta 0, no clipping)
    out    = clamp((x_0 + 1) / 2)[:h, :w]

The ``lite`` preset (lumen's compact version, trained here) keeps the encoder, the colour map
and the feature fusion, and adds a global tone prior (lumen addition, ``lumen_cli.prior``):
T(x) from per-image tone curves is given to the U-Net as 3 more input channels and the
U-Net predicts x0 as a residual on it, whose low frequencies stay those of T(x)
(``anchor_detail``; σ from the file's ``anchor``, ``opts.extra["anchor"]`` overrides, 0: off),
so the diffusion model owns noise and detail, where the degradation features matter most.
Its U-Nets run at 1/4 resolution (``stem`` 4), tiles are padded only to the next multiple of
32, and the result goes through ``finish_shadows`` (``opts.extra["post"]`` False: off).

``opts.extra["patch"] = p`` (paper presets) runs the official overlapping-patch mode instead:
p x p patches every ``opts.extra.get("grid", 16)`` px, each with its own features, eps
averaged over overlaps at every step. It costs about (p / r)^2 times the whole-image mode
(64x at p = 128, r = 16: 558 patches x 25 steps for a 600 x 400 photo); lumen covers the
strip the official grid misses (where the official code writes NaN).

Tiles: ``analyze`` draws the starting noise once for the whole (padded) image from the CPU
generator and runs the degradation encoder once on the whole padded image (its instance
norms see the whole picture, as in the official whole-image mode); each tile takes its region
of both (``crop_noise``, ``tile_features``: an exact crop when the tile starts on the
feature grid, else bilinear samples at the tile's feature-pixel centres). The lite U-Net
reads no statistic of its whole input (``presets.LITE_LOCAL``), so a tile differs from the
whole image only through the receptive field cut by its border; the paper presets' GroupNorms
normalise each tile by its own statistics.
``opts.exposure`` scales the result's linear light (1 = the method's own result).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from lumen_cli.diffusion.ddpm import ddim_eps_sample, eps_from_x0
from lumen_cli.errors import UsageError
from lumen_cli.methods.lldiffusion import sampling as S
from lumen_cli.methods.lldiffusion.nets import colour_map, eps_model
from lumen_cli.methods.lldiffusion.presets import PRESETS
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region

LITE_STEPS = 4
DECOMPOSING = ("retinex", "kind", "diff-retinex", "lighten-diffusion")


def crop_noise(noise: torch.Tensor, region: Region, hw: tuple[int, int]) -> torch.Tensor:
    """The (1,3,h,w) part of the whole-image noise at ``region`` (y0, x0, y0+h, x0+w); rows or
    columns past its edge repeat the last ones."""
    y0, x0 = region[:2]
    h, w = hw
    ys = torch.arange(y0, y0 + h).clamp(max=noise.shape[-2] - 1)
    xs = torch.arange(x0, x0 + w).clamp(max=noise.shape[-1] - 1)
    return noise.index_select(-2, ys).index_select(-1, xs)


def tile_features(
    feats: list[torch.Tensor], region: Region, hw: tuple[int, int], full: tuple[int, int]
) -> list[torch.Tensor]:
    """The part of whole-image features (each (1,C,Hp/s,Wp/s), scale s) under the padded
    tile at ``region`` (y0, x0) of size ``hw``; ``full`` = (Hp, Wp). Exact crops when y0, x0
    are multiples of s and the tile lies inside; bilinear samples at the tile's feature-pixel
    centres otherwise (borders repeat)."""
    y0, x0 = region[:2]
    out = []
    for f in feats:
        s = full[0] // f.shape[-2]
        h, w = hw[0] // s, hw[1] // s
        if (
            y0 % s == 0
            and x0 % s == 0
            and y0 // s + h <= f.shape[-2]
            and x0 // s + w <= f.shape[-1]
        ):
            out.append(f[..., y0 // s : y0 // s + h, x0 // s : x0 // s + w])
            continue
        ys = (torch.arange(h, device=f.device) + y0 / s + 0.5) / f.shape[-2] * 2 - 1
        xs = (torch.arange(w, device=f.device) + x0 / s + 0.5) / f.shape[-1] * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([gx, gy], -1)[None].to(f.dtype)
        out.append(F.grid_sample(f, grid, "bilinear", "border", align_corners=False))
    return out


def anchor_of(denoiser) -> float:
    """σ (px) of the lite U-Net's low-frequency anchor: its file's ``anchor`` (0: the U-Net
    owns all frequencies of x0 − T(x)), else the tone prior's ANCHOR_SIGMA."""
    from lumen_cli.prior.tone import ANCHOR_SIGMA

    a = getattr(denoiser, "anchor", None)
    return ANCHOR_SIGMA if a is None else float(a)


def lite_model(encoder, denoiser, cond, base, a_bar, sigma: float, feats=None, clamp=True):
    """model_fn(x_t, t) -> eps for ``ddim_eps_sample`` with the lite denoiser: the U-Net sees
    cat(x_t, cond, colour map, base) (all [-1,1]) and predicts x0 - base; the x0 estimate keeps
    the base's low frequencies (``anchor_detail``, σ px); eps follows from x0. ``base`` None
    (``lite-plain``): the U-Net sees cat(x_t, cond, colour map) and predicts x0 itself.
    ``feats``: the degradation features of cond if already computed. ``clamp`` false
    (training): the anchored x0 is not clamped to [-1,1], so an overshoot passes a gradient."""
    from lumen_cli.prior.tone import anchor_detail

    feats = encoder(cond) if feats is None else feats
    fixed = torch.cat([cond, colour_map(cond)] + ([] if base is None else [base]), 1)
    pre = denoiser.cond_response(fixed)  # the condition's share of the first convolution

    def fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = denoiser(x_t, t, feats, pre.expand(x_t.shape[0], -1, -1, -1))
        if base is not None:
            x0 = x0 + base
        if base is not None and sigma > 0:
            x0 = anchor_detail((x0 + 1) / 2, (base + 1) / 2, sigma, clamp) * 2 - 1
        return eps_from_x0(x_t, x0, t, a_bar)

    return fn


class LLDiffusionPipeline(Pipeline):
    method = "lldiffusion"
    size_multiple = 1  # enhance pads each tile itself (the official rule in paper presets)
    default_steps = LITE_STEPS
    presets: ClassVar = PRESETS
    default_preset = "lite"
    memory_per_pixel = 3072
    parallel_tiles = False  # two tiles at once: no faster at 12 MP, more memory (NOTES)
    min_overlap = 128
    decomposes: ClassVar[bool] = False

    def __init__(self, nets=None):
        super().__init__(nets)
        den = self.nets["denoiser"] if "denoiser" in self.nets else None
        self.lite = getattr(den, "prediction", "eps") == "x0"  # lite and lite-plain
        self.toned = "tone" in self.nets  # lite: the tone prior and the shadow finish
        if not self.lite:  # the paper presets sample with the official 25 steps
            self.default_steps = S.PAPER_STEPS
            self.memory_per_pixel = 16384

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.methods.lldiffusion.train import stages

        return stages()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.lite:
            return S.ceil_pad(x, self.nets["denoiser"].size_multiple)
        return S.official_pad(x, self.nets["denoiser"].size_multiple)

    # -- inference ----------------------------------------------------------------------
    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """x: (1,3,H,W) in [0,1]. The whole padded image's starting noise (CPU generator) and
        degradation features, in lite the tone curves and the noise level of T(x)."""
        cond = self._pad(x.float().to(self.device)) * 2 - 1
        ctx = {"noise": torch.randn(cond.shape, generator=generator)}
        if not opts.extra.get("patch"):
            ctx["feats"] = self.nets["encoder"](cond)
        if self.toned:
            from lumen_cli.prior.tone import curves_for, tone_noise

            curves = curves_for(self.nets, x.to(self.device).float())
            ctx.update(curves=curves, tone_noise=tone_noise(x, curves))
        return ctx

    def enhance(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """x: (B,3,h,w) in [0,1] sRGB tile -> (B,3,h,w) in [0,1]."""
        b, _, h, w = x.shape
        steps = int(opts.steps or self.default_steps)
        enc, den = self.nets["encoder"], self.nets["denoiser"]
        # 1. condition: the padded tile in [-1,1]
        cond = self._pad(x.float()) * 2 - 1
        noise = crop_noise(ctx["noise"], region, cond.shape[-2:]).to(x.device)
        noise = noise.expand(b, -1, -1, -1)
        if "feats" in ctx:
            full = ctx["noise"].shape[-2:]
            feats = tile_features(ctx["feats"], region, cond.shape[-2:], full)
        else:  # patch mode computes its own per patch
            feats = None if opts.extra.get("patch") else enc(cond)
        a_bar, pairs = S.schedule(), S.step_pairs(steps)
        done = lambda i, n: opts.report("step", i, n)  # noqa: E731
        # 2. sample
        if self.lite:
            from lumen_cli.prior.tone import toned

            base, sigma = None, 0.0
            if self.toned:
                base = toned(x.float(), ctx["curves"].to(x.device), noise=ctx["tone_noise"])
                base = self._pad(base) * 2 - 1
                sigma = float(opts.extra.get("anchor", anchor_of(den)))
            fn = lite_model(enc, den, cond, base, a_bar, sigma, feats)
            out = ddim_eps_sample(fn, noise, a_bar, pairs, callback=done)
        elif opts.extra.get("patch"):
            out = self._patch_sample(cond, noise[..., :h, :w], a_bar, pairs, opts, done)
        else:
            fixed = torch.cat([cond, colour_map(cond)], 1)
            fn = lambda xt, t: den(torch.cat([xt, fixed], 1), t, feats)  # noqa: E731
            out = ddim_eps_sample(fn, noise, a_bar, pairs, callback=done)
        # 3. crop, to [0,1], lumen's finish
        out = ((out[..., :h, :w].float() + 1) / 2).clamp(0, 1)
        if self.toned:
            from lumen_cli.prior.finish import finish_shadows

            out = finish_shadows(x.float(), out, opts, region[:2])
        return self._exposure(out, opts.exposure)

    def _patch_sample(self, cond, noise, a_bar, pairs, opts, done):
        p, r = int(opts.extra["patch"]), int(opts.extra.get("grid", 16))
        h, w = noise.shape[-2:]
        if p % 32 or p > min(h, w) or cond.shape[0] != 1:
            raise UsageError(f"patch mode: the patch size ({p}) must be a multiple of 32 and "
                             f"fit the tile ({h}x{w}); one image at a time")  # fmt: skip
        fn = eps_model(self.nets["encoder"], self.nets["denoiser"])
        corners = S.patch_corners(h, w, p, r, cover=True)
        model = S.patch_eps(fn, cond[..., :h, :w], corners, p, int(opts.extra.get("batch", 64)))
        return ddim_eps_sample(model, noise, a_bar, pairs, callback=done)

    @staticmethod
    def _exposure(out: torch.Tensor, exposure: float | None) -> torch.Tensor:
        if exposure is None or float(exposure) == 1.0:
            return out
        from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear

        return linear_to_srgb(srgb_to_linear(out) * float(exposure)).clamp(0, 1)

    def decompose(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        raise UsageError(
            "lldiffusion has no Retinex decomposition (it learns degradation features, not "
            f"reflectance and illumination); methods that decompose: {', '.join(DECOMPOSING)}"
        )
