"""KinD ("Kindling the Darkness", Zhang, Zhang, Guo, ACM MM 2019) as a lumen pipeline.

Recipe for one image (x: (1,3,H,W) float in [0,1], sRGB)::

    analyze:  α0 = exp(ratio(x downsampled))   # light ratio from the input alone (lumen addition)
              α  = α0 · exposure^(1/2.2)         # --exposure: linear light x exposure
              T  = tone(x downsampled)           # per-channel tone curves (lite; lumen addition)
    per tile: R, L = decom(x)                    # reflectance (3ch) and illumination (1ch)
              L̂   = adjust(L, α)                 # relight L to the ratio α
              R_in = R, or with T: clamp(T(x) / adjust(L, α0))   # the tone-prior reflectance
              R̂   = restore(R_in, L)             # denoise / fix colour of R, guided by L
              out = R̂ · L̂

The default light ratio is predicted by ``RatioNet`` from a downsampled copy of the whole
image (never from a reference; the official LOL evaluation takes it from the ground truth).
Without a ``ratio`` net, a fixed target mean illumination of 0.42 (the median brightness of the
SICE training references) is used: α0 = 0.42 / mean(max-RGB).

The official test script adds two steps, available via ``opts.extra`` (``darken_shadows``,
``blend_input``) and off by default (``DEFAULT_EXTRAS``): it darkens R̂ where the input
reflectance is near black, and blends the result with the input by L.

Presets: ``paper`` (KinD) and ``paper-plus`` (KinD++, its MSIA restoration net in
``msia.py``) are the official architectures, layer for layer, loadable from the authors'
checkpoints with ``lumen weights convert kind``; ``port`` holds the nets of the PyTorch port
fenghansen/KinD-pytorch. These presets run the authors' ``evaluate.py`` recipe
(``official.py``): min-max stretch, user ratio (5.0, or ``opts.extra["ratio"]``; times
exposure^(1/2.2) for ``--exposure``), gray-gain fusion, blend with the input, truncating uint8
output (``opts.extra["truncate"]``); KinD++'s ``--adjustment`` is ``opts.extra["adjustment"]``.
A file without the restoration net (not published by the authors) can ``decompose`` only.
``lite`` (shipped)
narrows decom and restoration and uses lumen's *residual* heads: every net starts from the
identity (R = I / max(L, max-RGB), R̂ = R_low, L̂ = clip(α·L)) and learns a correction in logit
space; it adds the global tone prior (``lumen_cli.prior.tone``): R_in · L̂0 is the curve-mapped
image T(x), R̂ keeps R_in's low frequencies (``anchor_detail``), and the shadow finish
(``lumen_cli.prior.finish``) is the last step. ``--exposure`` relights through α (KinD's own
control), with the highlights rolled off above 1. Training: ``lumen_cli.methods.kind.train``.
Measurements and the history of the shipped weights: benchmarks/NOTES.md.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from lumen_cli.methods.kind import official
from lumen_cli.methods.kind.presets import PRESETS, TARGET_MEAN_L
from lumen_cli.ops.filters import gaussian_blur
from lumen_cli.ops.resize import shrink
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, srgb_gain
from lumen_cli.prior.finish import finish_shadows, highlight_rolloff
from lumen_cli.prior.tone import (
    anchor_detail,
    anchor_sigma,
    curves_for,
    lift_illumination,
    tone_noise,
    tone_reflectance,
    toned,
)
from lumen_cli.retinex import losses as RL

W_IP = 1.0  # weight of the max-RGB illumination prior in the decomposition loss
ALPHA_RANGE = (0.05, 30.0)
DEFAULT_EXTRAS = {"darken_shadows": False, "blend_input": False}  # + "anchor": anchor_sigma
ANALYZE_SIZE = 256  # the ratio estimator sees the whole image at this long side (area average)


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
    channels_last: ClassVar[bool] = True  # oneDNN's NHWC convolutions (benchmarks/NOTES.md)
    presets: ClassVar[dict[str, dict[str, tuple[str, dict[str, Any]]]]] = PRESETS
    default_preset: ClassVar[str] = "lite"
    exposure_doc: ClassVar[str] = (
        "KinD's light ratio: alpha = alpha0 * exposure^(1/2.2) relights L through the "
        "adjustment net (highlights rolled off above 1)"
    )

    def __init__(self, nets=None):
        super().__init__(nets)
        self.preset = self.preset_of(self.nets)
        self.official = self.preset in ("paper", "paper-plus", "port")  # evaluate.py's recipe
        self.plus = self.preset == "paper-plus"
        if self.official:  # TF "SAME" nets run at any size; MSIA needs multiples of 4
            self.reduced_precision = False  # the authors' numbers are fp32
            self.size_multiple = 4 if self.plus else 1
            self.memory_per_pixel = 16384 if self.plus else 2048  # whole images when they fit
            self.min_overlap = 128  # the restoration nets see far: wide seams if tiled

    @classmethod
    def preset_of(cls, nets) -> str | None:
        """The preset whose nets (arch and config) these are, a subset allowed; else None."""
        for name, spec in cls.presets.items():
            if nets and all(
                n in spec
                and (getattr(m, "lumen_arch", None), getattr(m, "lumen_config", None))
                == (spec[n][0], spec[n][1])
                for n, m in nets.items()
            ):
                return name
        return None

    @classmethod
    def stages(cls) -> list:
        from lumen_cli.methods.kind.train import stages

        return stages()

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
        """Whole-image light ratio: {'alpha0': (B,), 'alpha': (B,) = alpha0 · exposure}; the
        official recipe: {'stretch': (lo, scale) of the min-max stretch, 'alpha': (B,)}."""
        if self.official:
            a0 = float(opts.extra.get("ratio", official.OFFICIAL_RATIO))
            alpha = torch.full((x.shape[0],), a0 * srgb_gain(opts.exposure))
            return {"stretch": official.stretch_range(x), "alpha": alpha}
        with torch.no_grad():
            a0 = self.default_ratio(x.to(self.device))
            curves = curves_for(self.nets, x.to(self.device))
        out = {"alpha0": a0, "alpha": (a0 * srgb_gain(opts.exposure)).clamp(*ALPHA_RANGE)}
        if curves is None:
            return out
        return out | {"curves": curves, "tone_noise": tone_noise(x, curves)}

    def _maps(self, x: torch.Tensor, ctx: dict, opts: EnhanceOptions) -> dict[str, torch.Tensor]:
        # 1. decompose the tile into R (3 channels) and L (1)
        r, l = self.nets["decom"](x)
        if "alpha" not in ctx:
            ctx = self.analyze(x, opts, torch.Generator())

        def per_image(a: torch.Tensor) -> torch.Tensor:
            a = a.to(x.device).float().reshape(-1)
            return a.expand(x.shape[0]) if a.numel() == 1 and x.shape[0] > 1 else a

        # 2. relight L to the ratio α (and, for --exposure, to the default ratio α0 too)
        alpha, curves = per_image(ctx["alpha"]), ctx.get("curves")
        l_hat = self.nets["adjust"](l, alpha).float()
        l_hat0 = l_hat
        relit = curves is not None and not torch.equal(alpha, per_image(ctx["alpha0"]))
        if relit:
            l_hat0 = self.nets["adjust"](l, per_image(ctx["alpha0"])).float()
        if curves is not None:
            curves = curves.to(x.device)
        # 3. the restoration net's input: R, or the tone-prior reflectance T(x) / L^0 (lite)
        r_in, l_out = restore_input(x, r, l_hat0, curves, ctx.get("tone_noise"))
        # 4. restore R, keeping the tone prior's low frequencies (lite)
        r_hat = self.nets["restore"](r_in, l).float()
        if curves is not None:
            r_hat = anchor_detail(r_hat, r_in, anchor_sigma(opts))
        # 5. the illumination of the output; --exposure relights by adjust(L, α) / adjust(L, α0)
        if relit:
            l_hat = l_out * l_hat / l_hat0.clamp_min(1e-3)
        else:
            l_hat = l_out
        return {"reflectance": r.float(), "illumination": l.float(), "r_hat": r_hat, "l_hat": l_hat}

    def _official(self, x: torch.Tensor, ctx: dict, opts: EnhanceOptions, full: bool) -> dict:
        if "stretch" not in ctx:
            ctx = self.analyze(x, opts, torch.Generator())
        return official.maps(self.nets, x, ctx["stretch"], ctx["alpha"], full)

    def enhance(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> torch.Tensor:
        """x: (B,3,h,w) in [0,1] sRGB, h and w multiples of ``size_multiple`` -> (B,3,h,w)."""
        if self.official:
            with torch.no_grad():
                m = self._official(x, ctx, opts, full=True)
                use_l = opts.extra.get("adjustment", not self.plus)
                out = official.fuse(
                    m["x_s"], m["reflectance"], m["illumination"], m["r_hat"],
                    m["l_hat"] if use_l else None,
                )  # fmt: skip
                trunc = opts.extra.get("truncate", True)
                return official.truncate_uint8(out) if trunc else out.clamp(0, 1)
        with torch.no_grad():
            m = self._maps(x, ctx, opts)  # steps 1-5
            r_hat = m["r_hat"]
            extras = {**DEFAULT_EXTRAS, **opts.extra}
            if extras["darken_shadows"]:  # official evaluate.py step
                gray = RL.rgb_to_gray(m["reflectance"])
                k = gaussian_blur(gray, 3.0)
                r_hat = r_hat * torch.clamp(2 * k, 0, 1).sqrt()
            # 6. recompose R^ · L^, rolling off highlights that --exposure pushed past 1
            out = highlight_rolloff(r_hat * m["l_hat"], srgb_gain(opts.exposure))
            if extras["blend_input"]:  # official evaluate.py step
                out = m["illumination"] * x.float() + (1 - m["illumination"]) * out
            out = out.clamp(0, 1)
            if "tone" in self.nets:  # 7. the shadow finish (lite)
                out = finish_shadows(x, out, opts, region[:2])
            return out

    def decompose(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> dict[str, torch.Tensor]:
        """{'reflectance' (B,3,h,w), 'illumination' (B,1,h,w): the decomposition net's maps;
        'reflectance_restored' (B,3,h,w), 'illumination_adjusted' (B,1,h,w)}, all in [0,1]."""
        with torch.no_grad():
            if self.official:
                m = self._official(x, ctx, opts, full=bool(opts.extra.get("adjusted")))
                names = {"reflectance": "reflectance", "illumination": "illumination"} | (
                    {"reflectance_restored": "r_hat", "illumination_adjusted": "l_hat"}
                    if "r_hat" in m
                    else {}
                )
                return {k: m[v].clamp(0, 1) for k, v in names.items()}
            m = self._maps(x, ctx, opts)
        return {
            "reflectance": m["reflectance"].clamp(0, 1),
            "illumination": m["illumination"].clamp(0, 1),
            "reflectance_restored": m["r_hat"].clamp(0, 1),
            "illumination_adjusted": m["l_hat"].clamp(0, 1),
        }
