"""LightenDiffusion (Jiang et al., ECCV 2024) as a lumen pipeline.

Recipe for one image x (1,3,H,W) float in [0,1], sRGB, as the official ``evaluate.py``::

    analyze (whole image, once):
        noise    = N(0, I) of shape (1,3,ceil(H/64)*8,ceil(W/64)*8) from the CPU generator
    per tile (padded by the runner to a multiple of 64 by reflection on the right/bottom):
        z, skips = CTDN encoder(x)                    z (B,3,h/8,w/8) in (0,1)
        cond     = 2 z - 1
        x0       = DDIM eta 0 (U-Net eps(cat(cond, x_t), t), noise[tile]), steps S:
                   t = T/S*(S-1), ..., T/S, 0 then the x0 estimate (no clipping inside);
                   an x0-predicting U-Net (lite: ``pred = "x0"``, lumen option) gives x0
                   clamped to [-1,1] and DDIM uses the eps it implies
        z^       = clamp((x0 + 1) / 2, 0, 1)           the latent of R_low x L_normal
        out      = CTDN decoder(z^, skips)             the low image's own pyramid as skips
        crop, clamp to [0,1]

The CTDN's Retinex decomposition of the latent is a training device (it forms the diffusion's
target R_low x L_normal); at inference the official code computes it and throws it away, so
``enhance`` skips it. ``decompose`` returns it at the input's size: the illumination is the
latent L map (smooth by training) upsampled bilinearly; the reflectance is the latent R map
*decoded* by the CTDN decoder with the image's own skips (R is an evenly lit latent, so the
decoder renders it at full resolution with the detail of x), clamped to [0,1].

``--exposure`` multiplies the output's linear light (sRGB transfer undone, scaled, redone):
1.0 = the model's own brightness. Sampling noise is drawn once for the whole image on the CPU
(``--seed``); a tile takes the noise under its own latent pixels, so overlapping tiles sample
from the same noise. The U-Net's attention (level 2 and middle) is global over a tile's latent:
large photos are tiled (``memory_per_pixel``) so its cost stays bounded.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from lumen_cli.diffusion import ddpm
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region

T_TRAIN = 1000  # diffusion steps of the schedule (linear betas 1e-4 -> 2e-2)

PRESETS = {
    # the official configs/unsupervised.yml; CTDN width = the official constructor default
    "paper": {
        "decom": ("lighten-diffusion.ctdn", {"channels": 64}),
        "unet": (
            "lighten-diffusion.unet",
            {"ch": 64, "ch_mult": [1, 2, 3, 4], "num_res_blocks": 2, "attn_levels": [2]},
        ),
    },
    # compact: the same modules at a quarter of the CTDN width (16: the decoder's 1/2-scale
    # features then hold 4 values per output pixel; width 8 held 2 for 3 colours, and blurred)
    # with residual decomposition heads around the smoothed max-RGB maps (``nets.prior_maps``),
    # and half the U-Net width
    "lite": {
        "decom": ("lighten-diffusion.ctdn", {"channels": 16, "prior_headroom": 0.6}),
        "unet": (
            "lighten-diffusion.unet",
            {
                "ch": 32,
                "ch_mult": [1, 1, 2, 2],
                "num_res_blocks": 1,
                "attn_levels": [2],
                # x0, not eps: at t ~ 950 (sqrt(alpha_bar) ~ 0.01) a small eps error sets the
                # whole brightness of an eps model's DDIM sample; an x0 model's estimate is the
                # conditional target itself from the first step
                "pred": "x0",
            },
        ),
    },
}


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


def apply_exposure(img: torch.Tensor, exposure: float | None) -> torch.Tensor:
    """Scale the linear light of an sRGB image (B,3,H,W) in [0,1] by ``exposure``."""
    if exposure is None or exposure == 1.0:
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

    def __init__(self, nets=None):
        super().__init__(nets)
        if "decom" in self.nets:  # the full-resolution CTDN features dominate a tile's memory
            self.memory_per_pixel = 96 * self.nets["decom"].ReconNet.conv2.in_channels + 1024

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.methods.lighten_diffusion.train import stages

        return stages()

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """x: (1,3,H,W) in [0,1]. The whole image's latent sampling noise (CPU generator)."""
        H, W = x.shape[-2:]
        m = self.size_multiple
        shape = (1, 3, -(-H // m) * m // 8, -(-W // m) * m // 8)
        return {"noise": torch.randn(shape, generator=generator, dtype=torch.float32)}

    def enhance(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """x: (B,3,h,w) in [0,1] sRGB tile, h and w multiples of 64 -> (B,3,h,w) in [0,1]."""
        decom, unet = self.nets["decom"], self.nets["unet"]
        # 1. encode the low-light tile: latent and the pyramid features the decoder reuses
        z, skips = decom.encode(x)
        # 2. the tile's share of the whole image's noise
        noise = latent_window(ctx["noise"], region).to(z.device).expand(x.shape[0], -1, -1, -1)
        # 3. DDIM in the latent space, conditioned on the low latent
        steps = int(opts.steps or self.default_steps)
        z_hat = sample_latent(
            unet, 2 * z - 1, noise, steps, callback=lambda i, n: opts.report("step", i, n)
        )
        # 4. decode with the low image's skips; 5. the user's light level
        out = decom.decode(z_hat.to(z.dtype), skips).float().clamp(0, 1)
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
