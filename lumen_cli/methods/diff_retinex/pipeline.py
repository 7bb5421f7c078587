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

Diffusion as in the paper: linear betas over T = 1000 (RDA 1e-6 -> 1e-2, IDA 1e-6 -> 2e-2),
conditioning by the low-light maps, SR3 continuous noise level; sampling is deterministic DDIM
with ``opts.steps`` steps. The paper's models predict the noise; the lite preset predicts x0,
which keeps few-step samples clean (an eps error is amplified by sqrt(1/a_bar - 1) at the noisy
end). The IDA sees the whole (downsampled) picture, where the brightness decision lives; its
low-resolution adjustment is carried to full size as a gain on the full-resolution L. The RDA
learns the normal-light reflectance under the illumination L^ the pipeline applies
(R* = I_n / L^, see ``lumen_cli.methods.diff_retinex.train``), so R^ * L^ can reach the
reference.

In the ``lite`` preset (lumen additions) the RDA's residual base is the reflectance that the
global tone prior T(x) (``lumen_cli.prior.tone``) implies under L^, every x0 estimate keeps
that base's low frequencies (``anchor_detail``, ``opts.extra["anchor"]`` sets σ, 0: off), and
the shadow finish (``lumen_cli.prior.finish``) is the last step. ``--exposure`` e is the gain
e^(1/2.2) on L^ (linear light x e; 1 = the model's choice), highlights rolled off above 1.
Measurements and the history of the shipped weights: benchmarks/NOTES.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from lumen_cli.diffusion.denoiser import Denoiser
from lumen_cli.methods.diff_retinex.paper_pipeline import PaperDiffRetinexPipeline, is_paper
from lumen_cli.methods.diff_retinex.presets import PRESETS
from lumen_cli.ops.resize import work_resize
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, crop_ctx, srgb_gain
from lumen_cli.prior.finish import finish_shadows, highlight_rolloff
from lumen_cli.prior.tone import (
    ANCHOR_SIGMA,
    anchor_parts,
    anchor_sigma,
    curves_for,
    lift_illumination,
    tone_noise,
    tone_reflectance,
    toned,
)


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


def rda_denoiser(
    rda,
    r_base: torch.Tensor | None,
    sigma: float = ANCHOR_SIGMA,
    drift: list | None = None,
    clamp: bool = True,
) -> Denoiser:
    """The RDA as a ``Denoiser``. With a tone base (lite) and x0 prediction, every x0 estimate
    keeps the low frequencies of R_base (``anchor_detail``, lumen addition), in training and at
    each sampling step alike: the RDA then learns and changes only noise and detail, the tone
    curves own brightness and colour. r_base: (B,3,h,w) in [0,1] or None. ``drift`` (training):
    a list that receives, per call, mean |blur_σ(R^ - R_base)| of the raw estimate, the low
    frequencies that the anchor discards and that no other loss term reaches. ``clamp``
    false (training): the anchored estimate is not clamped to [0,1], so an overshoot where the
    target is 0 or 1 is penalised instead of passing no gradient."""
    if r_base is None or sigma <= 0 or rda.prediction != "x0":
        return Denoiser(rda)

    def x0_fn(x0: torch.Tensor) -> torch.Tensor:
        out, low = anchor_parts((x0.float() + 1) / 2, r_base, sigma)
        if drift is not None:
            drift.append(low.abs().mean())
        return (out.clamp(0, 1) if clamp else out) * 2 - 1

    return Denoiser(rda, x0_fn)


class DiffRetinexPipeline(Pipeline):
    method = "diff-retinex"
    size_multiple = 16
    default_steps = 5  # the official test's DDIM step count (paper_pipeline.PAPER_STEPS)
    presets: ClassVar = PRESETS
    default_preset = "lite"
    memory_per_pixel = 6144
    exposure_doc = "a gain of exposure^(1/2.2) on the adjusted illumination L^ (rolled off above 1)"

    def __new__(cls, nets=None):
        # converted official weights (the paper preset) run the authors' own recipe
        if cls is DiffRetinexPipeline and nets and is_paper(nets):
            return PaperDiffRetinexPipeline(nets)
        return super().__new__(cls)

    def __init__(self, nets=None):
        super().__init__(nets)
        # the nets run channels-last inside (faster convolutions on CPUs): keep weights so too
        self.nets.to(memory_format=torch.channels_last)

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.methods.diff_retinex.train import stages

        return stages()

    # -- inference ----------------------------------------------------------------------
    def _steps(self, opts: EnhanceOptions) -> int:
        return int(opts.steps or self.default_steps)

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """x: (1,3,H,W) float32 in [0,1] sRGB. Returns the low-res maps, the global vector and
        the full-image RDA noise (drawn on the CPU from ``generator``)."""
        tdn, ida = self.nets["tdn"], self.nets["ida"]
        H, W = x.shape[-2:]
        # 1. decompose a work-size copy of the whole image
        x_s = work_resize(x.float(), ida.work_size).to(self.device)
        r_s, l_s = tdn(x_s)
        # 2. all the noise of the run, from the CPU generator (--seed): IDA's, then the RDA's
        noise_s = torch.randn((1, 1) + tuple(x_s.shape[-2:]), generator=generator)
        noise = torch.randn((1, 3, H, W), generator=generator)
        # 3. IDA: DDIM-sample the adjusted illumination L^_s at work size
        feats = ida.encode(ida_condition(l_s, r_s, x_s))
        l_hat = Denoiser(ida).sample(noise_s.to(self.device), feats, self._steps(opts))
        l_hat = ((l_hat + 1) / 2).clamp(0, 1)
        # 4. the RDA's global vector as in training (the model's own L^), then --exposure's gain
        g = torch.cat([r_s.float().mean((2, 3)), l_hat.mean((2, 3))], 1)
        exposure = srgb_gain(opts.exposure)  # the gain on L^ (sRGB values)
        l_hat = l_hat * exposure
        # 5. the tone prior's whole-image curves and the noise of T(x) (lite)
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
        out = rda_denoiser(rda, r_base, sigma).sample(
            noise, feats, self._steps(opts), callback=lambda i, n: opts.report("step", i, n)
        )
        return ((out + 1) / 2).clamp(0, 1)

    def enhance(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """x: (B,3,h,w) in [0,1] sRGB tile -> (B,3,h,w) in [0,1]."""
        # 1. decompose the tile
        r, l_map = self.nets["tdn"](x)
        # 2. adjusted illumination: the IDA's low-resolution gain on the tile's L
        l_hat = self._adjusted_l(l_map, ctx, region, opts)
        # 3. the tone-prior base (lite): R_base = T(x) / L^, L^ lifted to T(x)'s max-RGB
        l_hat, l_cond, r_base = self._tone_base(x, l_hat, ctx)
        # 4. RDA: DDIM-sample the reflectance from the tile's crop of the whole-image noise
        r_hat = self._sample_r(r, l_map, l_cond, r_base, ctx, region, opts)
        # 5. recompose, rolling off highlights that --exposure pushed past 1; 6. shadow finish
        out = highlight_rolloff(r_hat * l_hat, ctx.get("exposure")).clamp(0, 1)
        return out if r_base is None else finish_shadows(x, out, opts, region[:2])

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
