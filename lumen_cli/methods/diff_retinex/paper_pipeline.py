"""Diff-Retinex with the authors' networks and their test recipe (the ``paper`` preset).

Yi et al., ICCV 2023. What the official test script does to one low-light image x
(1,3,H,W) in [0,1], and so what this pipeline does (no lumen additions)::

    1. R, L     = TDN(x)                                   # sigmoid maps
    2. c_R      = stretch(clip(R, 0, 1))                  # min-max over the whole tensor
       c_L      = stretch(L)                              # to [-1, 1]
    3. R^       = official_ddim(RDA, c_R)                 # 5 DDIM steps, eta 1
       L^       = official_ddim(IDA, c_L)
    4. G_R, G_L = uint8(round((clamp(., -1, 1) + 1) / 2 * 255))
    5. I        = floor(G_R / 255 * G_L / 255 * 255)      # float64, truncated to uint8

The official script neither pads nor resizes: H and W must be multiples of 8. lumen pads
other sizes on the right and bottom by reflection (the stretch then ignores the padding) and
crops the result. The sampler draws, in order, the RDA's start noise, its five step noises,
then the IDA's; here they come from the CPU generator seeded by ``--seed``. The official script
seeds once (``torch.manual_seed(1)``) and draws on the GPU, so its pictures depend on the GPU
and on the images processed before: they can be matched in distribution, not bit for bit.
Everything runs on the whole image in fp32 (the nets' attention is global): tiles only cut
the finished result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from lumen_cli.errors import UsageError
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region, crop_ctx

PAPER_STEPS = 5  # hard-coded in the official GaussianDiffusion, as is eta
PAPER_ETA = 1.0
_UNET = {"res_blocks": 2, "mults": [1, 2, 2, 4], "attn_levels": [3], "norm_groups": 1}
PAPER: dict[str, tuple[str, dict[str, Any]]] = {
    "tdn": ("diff-retinex.paper.tdn", {"dim": 24, "l_channels": 32}),
    "rda": (
        "diff-retinex.paper.diffusion",
        {
            "channels": 3,
            "denoiser": {
                "inner": 64,
                "mults": [1, 2, 4, 6],
                "res_blocks": 2,
                "attn_levels": [2],
                "norm_groups": 32,
            },  # fmt: skip
            "refiner": {"type": "restormer", "dim": 32},
            "beta": [1e-6, 1e-2],
        },
    ),
    "ida": (
        "diff-retinex.paper.diffusion",
        {
            "channels": 1,
            "denoiser": {"inner": 32, **_UNET},
            "refiner": {"type": "unet", "inner": 32, **_UNET},
            "beta": [1e-6, 2e-2],
        },
    ),
}


def is_paper(nets) -> bool:
    """True when ``nets`` are the official architectures (a converted checkpoint)."""
    return any(
        str(getattr(n, "lumen_arch", "")).startswith("diff-retinex.paper.") for n in nets.values()
    )


def official_timesteps(steps: int = PAPER_STEPS, n_train: int = 1000) -> list[int]:
    """t visited by the official DDIM, noisiest first: stride n//steps from n-1 (999 ... 199)."""
    c = n_train // steps
    return [n_train - 1 - i * c for i in range(steps)]


def stretch(x: torch.Tensor, valid: tuple[int, int] | None = None) -> torch.Tensor:
    """Min-max stretch of the whole tensor (all channels together) to [-1, 1] (the official
    OpenCV NORM_MINMAX glue); min and max over the top-left ``valid`` (h, w) area only."""
    x = x.float()
    ref = x if valid is None else x[..., : valid[0], : valid[1]]
    lo, hi = ref.min(), ref.max()
    if float(hi - lo) <= 0:
        return torch.full_like(x, -1.0)
    return (x - lo) / (hi - lo) * 2 - 1


def official_ddim(
    stage,
    cond: torch.Tensor,
    draw: Callable[[tuple[int, ...]], torch.Tensor],
    steps: int = PAPER_STEPS,
    eta: float = PAPER_ETA,
    trace: dict[str, list] | None = None,
) -> torch.Tensor:
    """The authors' conditional DDIM with the x0 refiner. cond (B,C,H,W) in [-1,1] ->
    sample (B,C,H,W) (the last step returns the clamped refined x0).

    Per step t (``official_timesteps``): gamma = sqrt(a_bar_t) from the float64 table;
    eps = denoise_fn([cond, x]); x0_d = clamp(x / sqrt(a) - sqrt(1/a - 1) eps) with the
    float32 buffers; x0 = clamp(Unet_fn([cond, x0_d])); then x <- sqrt(a') x0 +
    sqrt(1 - a' - s^2) eps + s z with s = eta sqrt((1-a')/(1-a) (1 - a/a')), a' the next
    step's a_bar (1 after the last) and z = ``draw(shape)``, drawn at every step. ``trace``
    collects eps, x0_d (unclamped), refiner output (unclamped) and x per step.
    """
    shape = tuple(cond.shape)
    ts = official_timesteps(steps, stage.n_timestep)
    s64 = stage.schedule64()["sqrt_alphas_cumprod_prev"]
    a_bar = stage.alphas_cumprod
    x = draw(shape).to(cond.device, torch.float32)
    for i, t in enumerate(ts):
        gamma = torch.full((shape[0],), float(s64[t + 1]), dtype=torch.float32, device=x.device)
        eps = stage.denoise_fn(torch.cat([cond, x], 1), gamma).float()
        x0_raw = stage.sqrt_recip_alphas_cumprod[t] * x - stage.sqrt_recipm1_alphas_cumprod[t] * eps
        ref = stage.Unet_fn(torch.cat([cond, x0_raw.clamp(-1, 1)], 1), gamma).float()
        a = a_bar[t]
        a_prev = a_bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones_like(a)
        sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
        z = draw(shape).to(x.device, torch.float32)
        x = a_prev.sqrt() * ref.clamp(-1, 1) + (1 - a_prev - sigma**2).sqrt() * eps + sigma * z
        if trace is not None:
            for k, v in (("eps", eps), ("x0_denoise", x0_raw), ("refined", ref), ("x", x)):
                trace.setdefault(k, []).append(v)
    return x


def to_uint8(m: torch.Tensor) -> torch.Tensor:
    """The official ``tensor2img``: [-1,1] map -> uint8 values (as float32), rounded half to
    even."""
    return torch.round((m.float().clamp(-1, 1) + 1) / 2 * 255)


def compose(g_r: torch.Tensor, g_l: torch.Tensor) -> torch.Tensor:
    """I = floor(((G_R / 255) G_L) / 255 * 255) in float64, as uint8 values (float32)."""
    i = ((g_r.double() / 255.0) * g_l.double()) / 255.0 * 255.0
    return torch.floor(i).clamp(0, 255).float()


class PaperDiffRetinexPipeline(Pipeline):
    """The ``paper`` preset: converted official weights run by the official test recipe.

    ``DiffRetinexPipeline`` hands itself over to this class when its nets are the paper
    architectures. ``opts.steps`` other than 5 keeps the official stride rule (a lumen
    extension); ``opts.exposure`` other than 1 scales the result's linear light (lumen).
    """

    method = "diff-retinex"
    size_multiple = 1  # the whole image is processed in ``analyze``; tiles cut the result
    default_steps = PAPER_STEPS
    presets: ClassVar = {"paper": PAPER}
    default_preset = "paper"
    memory_per_pixel = 64
    reduced_precision = False  # the authors' code runs fp32

    def _need(self, *names: str) -> None:
        missing = [n for n in names if n not in self.nets]
        if missing:
            raise UsageError(
                f"diff-retinex paper weights lack the {', '.join(missing)} net(s): convert "
                "the official TDN, Diff-RDA and Diff-IDA checkpoints together "
                "(`lumen weights convert diff-retinex ...`)"
            )

    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """Whole image: padding, TDN, and the two conditions (sampling waits for ``enhance``)."""
        self._need("tdn")
        H, W = x.shape[-2:]
        ph, pw = -H % 8, -W % 8
        xp = x.float().to(self.device)
        if ph or pw:
            mode = "reflect" if ph < H and pw < W else "replicate"
            xp = F.pad(xp, (0, pw, 0, ph), mode=mode)
        R, L = self.nets["tdn"](xp)
        return {
            "R": R.float(),
            "L": L.float(),
            "cond_rda": stretch(R.clamp(0, 1), (H, W)),
            "cond_ida": stretch(L, (H, W)),
            "draw": lambda shape: torch.randn(shape, generator=generator),
        }

    def _sample(self, ctx: dict, opts: EnhanceOptions) -> dict:
        """Both diffusion stages and the composition, once per image (cached in ``ctx``)."""
        if "image" in ctx:
            return ctx
        self._need("rda", "ida")
        draw, steps = ctx["draw"], int(opts.steps or PAPER_STEPS)
        r_hat = official_ddim(self.nets["rda"], ctx["cond_rda"], draw, steps)
        opts.report("step", 1, 2)
        l_hat = official_ddim(self.nets["ida"], ctx["cond_ida"], draw, steps)
        opts.report("step", 2, 2)
        g_r, g_l = to_uint8(r_hat), to_uint8(l_hat)
        image = compose(g_r, g_l) / 255
        e = float(opts.exposure or 1.0)
        if e != 1.0:
            from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear

            image = linear_to_srgb(srgb_to_linear(image) * e).clamp(0, 1)
        ctx.update(image=image, r_hat=g_r / 255, l_hat=g_l / 255)
        return ctx

    def enhance(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """The tile ``region`` of the whole-image result (B,3,h,w) in [0,1]."""
        img = self._sample(ctx, opts)["image"]
        return crop_ctx(img[..., : ctx["hw"][0], : ctx["hw"][1]], region, ctx["hw"]).to(x.device)

    def decompose(self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions):
        """TDN's maps; with ``opts.extra['adjusted']`` also the RDA's and IDA's results."""
        keys = {"reflectance": "R", "illumination": "L"}
        if opts.extra.get("adjusted"):
            self._sample(ctx, opts)
            keys.update(reflectance_adjusted="r_hat", illumination_adjusted="l_hat")
        H, W = ctx["hw"]
        return {
            k: crop_ctx(ctx[v][..., :H, :W], region, (H, W)).to(x.device) for k, v in keys.items()
        }
