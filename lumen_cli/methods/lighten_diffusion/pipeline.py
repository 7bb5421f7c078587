"""LightenDiffusion (Jiang et al., ECCV 2024) as a lumen pipeline.

Recipe for one image x (1,3,H,W) float in [0,1], sRGB, as the official ``evaluate.py`` (one
DDIM run over the whole image's latent), with lumen's bound on its size::

    analyze (whole image, once):
        lite:    x = dequantize_luma(x) if x is 8-bit (see below; tiles alike)
        ref      = x reflect-padded to a multiple of 64 (right/bottom) if its area is at most
                   REF_AREA, else x area-downscaled by k so it is, then padded
        noise    = N(0, I) of ref's latent shape (1,3,h_ref/8,w_ref/8), CPU generator
    light (once, at the first tile; lumen's whole-image step):
        z_ref    = CTDN encoder(ref)                   (1,3,h_ref/8,w_ref/8) in (0,1)
        z^_ref   = DDIM eta 0 of the LRDM conditioned on cond = 2 z_ref - 1, steps S:
                   t = T/S*(S-1), ..., T/S, 0 then the x0 estimate (no clipping inside);
                   an x0-predicting U-Net (lite: ``pred = "x0"``, lumen option) gives x0
                   clamped to [-1,1] and DDIM uses the eps it implies;
                   z^ = clamp((x0 + 1) / 2, 0, 1), the latent of R_low x L_normal
        k = 1:   the tiles use z^_ref itself (the official whole-image sample)
        lite:    g = (mean z^_ref / mean z_ref)^2.2, the linear-light gain the sample implies
                 (lumen addition, "bright skips"; paper: g = 1)
        k > 1:   gain = blur(z^_ref) / blur(E(g ref)) per channel (Gaussian, 1 latent pixel),
                 upsampled bilinearly to the full image's latent grid
    per tile (padded by the runner to a multiple of 64 by reflection on the right/bottom):
        z, skips = CTDN encoder(g tile)                tile's linear light times g
        z^       = z^_ref under the tile (k = 1), or clamp(z x gain under the tile, 0, 1)
        out      = CTDN decoder(z^, skips)             the tile's own pyramid as skips
        crop, clamp to [0,1]

The diffusion thus decides the light of the whole picture once, so tiles agree (a U-Net run
per tile would choose each tile's brightness from that tile alone), and its attention (level 2
and middle, global softmax over the latent) never sees more than REF_AREA / 64 latent pixels:
memory and time stay bounded for any photo. Up to REF_AREA (0.59 MP, e.g. 600x400 or
768x768) the result is the official whole-image sample; above it the full-resolution detail
comes from the CTDN encoder/decoder and the light from the downscaled sample's latent gain.

Bright skips (lite, lumen addition; ``opts.extra["bright_skips"]`` overrides): the decoder's
skips are the pyramid of the input brightened by the one linear-light gain g that the sampled
latent implies, not of the dark input itself, so the decoder renders a latent with the features
of an image of that latent's exposure, the regime of its reconstruction training. The paper
preset keeps the official skips of the low image. Measured with and without in BENCHMARKS.md.

Dequantisation (lite, lumen addition; ``opts.extra["dequantize"]`` sets σ in px, 0: off): the
luma of an 8-bit input (values on the 1/255 grid) is replaced by the smoothest luma inside its
quantisation cells (``ops.filters.dequantize_luma``, σ = DEQUANT_SIGMA, DEQUANT_ITERS passes,
at most half a code away), and each pixel's RGB is scaled by the luma's change, so its colour
ratios stay. The bright skips multiply the darkest codes 10-30x, so one code of a dark JPEG's
flat 8x8 blocks or of a dark gradient's banding became a step of 10-25 levels, and the
encoder's 8x8 latent turned blocks of code 0 into black holes; the ramps left inside the cells
are relit smoothly. Anything larger than one code is kept.

Chroma smoothing (lite, lumen addition; ``opts.extra["chroma"]`` sets σ in px, 0: off): the
decoded output's chroma (Cb, Cr) is blurred by the tone prior's σ (``prior.tone.CHROMA_SIGMA``,
``smooth_chroma``, luma untouched), as camera pipelines do: the lite decoder renders colour
noise that normal exposures do not have. The paper preset keeps the official output.

The CTDN's Retinex decomposition of the latent is a training device (it forms the diffusion's
target R_low x L_normal); at inference the official code computes it and throws it away, so
``enhance`` skips it. ``decompose`` returns it at the input's size: the illumination is the
latent L map (smooth by training) upsampled bilinearly; the reflectance is the latent R map
*decoded* by the CTDN decoder with the image's own skips (R is an evenly lit latent, so the
decoder renders it at full resolution with the detail of x), clamped to [0,1].

``--exposure`` multiplies the output's linear light (sRGB transfer undone, scaled, redone):
1.0 = the model's own brightness. Sampling noise is drawn once for the reference on the CPU
(``--seed``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from lumen_cli import tiling
from lumen_cli.diffusion import ddpm
from lumen_cli.methods.lighten_diffusion.presets import PRESETS
from lumen_cli.ops.filters import dequantize_luma, gaussian_blur, quantization_step
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region
from lumen_cli.prior.tone import CHROMA_SIGMA, smooth_chroma

T_TRAIN = 1000  # diffusion steps of the schedule (linear betas 1e-4 -> 2e-2)
REF_AREA = 768 * 768  # largest padded image area whose latent the LRDM samples at once
DEQUANT_SIGMA = 1.0  # lite's input dequantisation: blur sigma (px) and passes, reach ~ a JPEG block
DEQUANT_ITERS = 8


def schedule() -> torch.Tensor:
    """alpha_bar (T,) float32 of the official linear schedule."""
    return ddpm.alpha_bar_f32(ddpm.linear_betas_f32(T_TRAIN, 1e-4, 2e-2))


def unet_pred(unet) -> str:
    """'eps' or 'x0': what ``unet`` (or the module it wraps) predicts."""
    return getattr(unet, "pred", None) or getattr(getattr(unet, "module", None), "pred", "eps")


def sample_latent(unet, cond: torch.Tensor, noise: torch.Tensor, steps: int, callback=None):
    """DDIM (eta 0) of the LRDM: cond (B,3,h,w) = 2 z_low - 1, noise (B,3,h,w) -> latent
    (B,3,h,w) in [0,1] (``clamp((x0 + 1) / 2)``). An x0-predicting U-Net's output is clamped to
    [-1,1] and turned into the eps it implies (``ddpm.eps_from_x0``). Differentiable."""
    a_bar = schedule()

    def model(xt, t):
        out = unet(torch.cat([cond, xt], dim=1), t)
        if unet_pred(unet) == "eps":
            return out
        return ddpm.eps_from_x0(xt, out.to(xt.dtype).clamp(-1, 1), t, a_bar)  # in x_t's dtype

    x0 = ddpm.ddim_eps_sample(
        model,
        noise,
        a_bar,
        ddpm.ddim_skip_pairs(T_TRAIN, steps),
        callback=callback,
    )
    return ((x0 + 1) / 2).clamp(0, 1)


def latent_window(t: torch.Tensor, region: Region, factor: int = 8) -> torch.Tensor:
    """The part of a full-image latent map t (B,C,Hl,Wl) under ``region`` (image pixels, may
    reach past the border, whose rows/columns repeat the last ones)."""
    y0, x0, y1, x1 = region
    h, w = (y1 - y0) // factor, (x1 - x0) // factor
    ys = (torch.arange(h) + y0 // factor).clamp(max=t.shape[-2] - 1)
    xs = (torch.arange(w) + x0 // factor).clamp(max=t.shape[-1] - 1)
    return t.index_select(-2, ys).index_select(-1, xs)


def skip_gain(z_hat: torch.Tensor, z_low: torch.Tensor) -> torch.Tensor:
    """(B,1,1,1): the linear-light gain that takes the low latent z_low's mean to the sampled
    z_hat's (latents are 8x8 averages of linear light ^ 1/2.2, so a gain k on the image scales
    the latent by k^(1/2.2)); at least 1."""
    ratio = z_hat.float().mean((1, 2, 3), keepdim=True) / z_low.float().mean(
        (1, 2, 3), keepdim=True
    ).clamp_min(1e-4)
    return ratio.pow(2.2).clamp_min(1.0)


def apply_exposure(img: torch.Tensor, exposure) -> torch.Tensor:
    """Scale the linear light of an sRGB image (B,3,H,W) in [0,1] by ``exposure`` (a float or
    a (B,1,1,1) tensor), clipped at 1; ``img`` itself when the gain is None or 1."""
    if exposure is None or bool((torch.as_tensor(exposure) == 1).all()):
        return img
    from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear

    return linear_to_srgb((srgb_to_linear(img.clamp(0, 1)) * exposure).clamp(0, 1))


class LightenDiffusionPipeline(Pipeline):
    method = "lighten-diffusion"
    size_multiple = 64  # official reflect-pad multiple (three U-Net downsamplings of 1/8)
    default_steps = 20
    presets: ClassVar = PRESETS
    default_preset = "lite"
    memory_per_pixel = 8192
    min_overlap = 64
    exposure_doc = "a gain on the decoded output's linear light (exact sRGB curve, clipped at 1)"
    ablations: ClassVar = {
        "without bright skips": {"bright_skips": False},
        "without chroma smoothing": {"chroma": 0},
        "without dequantisation": {"dequantize": 0},
    }

    def __init__(self, nets=None):
        super().__init__(nets)
        # lite (an x0-predicting U-Net): bright skips by default; paper: the official skips
        self.bright_skips = "unet" in self.nets and unet_pred(self.nets["unet"]) == "x0"
        self.chroma = CHROMA_SIGMA if self.bright_skips else 0.0  # lite only, as bright skips
        self.dequant = DEQUANT_SIGMA if self.bright_skips else 0.0
        if "decom" in self.nets:  # the full-resolution CTDN features dominate a tile's memory
            self.memory_per_pixel = 96 * self.nets["decom"].ReconNet.conv2.in_channels + 1024

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.methods.lighten_diffusion.train import stages

        return stages()

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """x: (1,3,H,W) in [0,1]. The reference image the LRDM samples (x padded to a multiple
        of 64, area-downscaled first if larger than REF_AREA), its latent sampling noise (CPU
        generator), the downscale factor k >= 1 and the input's quantisation step (lite, 8-bit
        input: 1/255; else 0)."""
        H, W = x.shape[-2:]
        sigma = float(opts.extra.get("dequantize", self.dequant))
        step = quantization_step(x) if sigma > 0 else 0.0
        m = self.size_multiple
        pad = lambda n: -(-n // m) * m  # noqa: E731
        k = max(1.0, math.sqrt(pad(H) * pad(W) / REF_AREA))
        small = x.float()
        if k > 1.0:  # an area downscale averages the codes away by itself
            size = (max(1, round(H / k)), max(1, round(W / k)))
            small = F.interpolate(small, size=size, mode="area")
        else:
            small = dequantize_luma(small, step, sigma, DEQUANT_ITERS)
        h, w = small.shape[-2:]
        ref = tiling.extract(small, 0, 0, pad(h), pad(w))
        noise = torch.randn((1, 3, pad(h) // 8, pad(w) // 8), generator=generator)
        return {"ref": ref, "noise": noise, "scale": k, "ref_hw": (h, w), "quant": (step, sigma)}

    def light(self, ctx: dict, opts: EnhanceOptions, device) -> dict:
        """The whole image's light, sampled once (see the module docstring) and kept in ctx:
        {'latent': z^_ref (1,3,h,w)} when k = 1, else {'gain': (1,3,ceil(H/8),ceil(W/8))},
        and 'skip_gain' g (1,1,1,1), the linear-light gain of the skips' input (1: off)."""
        if "light" in ctx:
            return ctx["light"]
        decom, unet = self.nets["decom"], self.nets["unet"]
        z_ref, _ = decom.encode(ctx["ref"].to(device))
        steps = int(opts.steps or self.default_steps)
        z_hat = sample_latent(
            unet,
            2 * z_ref - 1,
            ctx["noise"].to(device, z_ref.dtype),
            steps,
            callback=lambda i, n: opts.report("step", i, n),
        )
        g = torch.ones(1, 1, 1, 1, device=device)
        if opts.extra.get("bright_skips", self.bright_skips):
            g = skip_gain(z_hat, z_ref)
        if ctx["scale"] == 1.0:
            light = {"latent": z_hat, "skip_gain": g}
        else:
            h, w = (-(-n // 8) for n in ctx["ref_hw"])
            if not bool((g == 1).all()):  # the reference's latent at the skips' exposure
                z_ref, _ = decom.encode(apply_exposure(ctx["ref"].to(device), g))
            z_ref = gaussian_blur(z_ref.float(), 1.0).clamp_min(1e-3)
            gain = gaussian_blur(z_hat.float(), 1.0) / z_ref
            H, W = ctx["hw"]
            size = (-(-H // 8), -(-W // 8))
            gain = F.interpolate(gain[..., :h, :w], size=size, mode="bilinear")
            light = {"gain": gain, "skip_gain": g}
        if all(bool(torch.isfinite(v).all()) for v in light.values()):
            ctx["light"] = light  # a non-finite one (reduced precision) is redone in the retry
        return light

    def enhance(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """x: (B,3,h,w) in [0,1] sRGB tile, h and w multiples of 64 -> (B,3,h,w) in [0,1]."""
        decom = self.nets["decom"]
        # 0. lite: the smooth image inside the 8-bit input's quantisation cells
        x = dequantize_luma(x, *ctx.get("quant", (0.0, 0.0)), DEQUANT_ITERS)
        # 1. the whole image's light, sampled once by the LRDM (first tile)
        light = self.light(ctx, opts, x.device)
        # 2. encode the tile (its linear light times g): latent and the decoder's skips
        z, skips = decom.encode(apply_exposure(x, light["skip_gain"].to(x.device)))
        # 3. the tile's share of the relit latent
        if "latent" in light:
            z_hat = latent_window(light["latent"], region).to(z.device, z.dtype)
        else:
            gain = latent_window(light["gain"], region).to(z.device, z.dtype)
            z_hat = (z * gain).clamp(0, 1)
        z_hat = z_hat.expand(x.shape[0], -1, -1, -1)
        # 4. decode with the tile's skips; 5. lite: chroma smoothing; 6. the user's light level
        out = decom.decode(z_hat.to(z.dtype), skips).float().clamp(0, 1)
        with torch.autocast(out.device.type, enabled=False):  # colour maths in fp32
            out = smooth_chroma(out, float(opts.extra.get("chroma", self.chroma))).clamp(0, 1)
        return apply_exposure(out, opts.exposure)

    def decompose(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """{'reflectance': (B,3,h,w), 'illumination': (B,1,h,w)} in [0,1]: the CTDN's latent
        R decoded with the tile's skips, and its latent L upsampled (bilinear)."""
        decom = self.nets["decom"]
        z, skips = decom.encode(x)
        r, lum = decom.retinex(z)
        refl = decom.decode(r, skips).float().clamp(0, 1)
        illum = F.interpolate(lum[:, :1].float(), size=x.shape[-2:], mode="bilinear")
        return {"reflectance": refl, "illumination": illum.clamp(0, 1)}
