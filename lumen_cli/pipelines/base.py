"""The contract every method implements.

A pipeline joins nets (``nn.Module``s from ``lumen_cli.nets``), diffusion samplers and Retinex
recomposition into the recipe of one published method. It never touches files, flags or
progress bars: the CLI, the tiler and the training engine call it.

Call order for one image (see ``lumen_cli.pipelines.run.enhance_image``)::

    ctx = pipe.analyze(x_full, opts, generator)        # once per image, whole picture
    for each tile (region = (y0, x0, y1, x1) in full-image pixels):
        out_tile = pipe.enhance(x_tile, ctx, region, opts)
    blend tiles -> output

``analyze`` sees the whole image (float32, CPU or device) and returns image-global context:
statistics, a low-resolution illumination map, full-image noise drawn from ``generator``...
Tiles read what they need of it by ``region``, so tiled and untiled runs agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from lumen_cli.errors import UsageError

Progress = Callable[[str, int, int], None]  # (what, done, total)
EXPOSURE_RANGE = (0.05, 8.0)  # accepted --exposure values
SRGB_GAMMA = 2.2  # linear light ~ sRGB ** 2.2, for mapping --exposure onto sRGB values


def check_exposure(exposure: float | None) -> float | None:
    """The one validation of ``--exposure``: None (the method's choice) or a finite number in
    ``EXPOSURE_RANGE``; raises UsageError otherwise."""
    if exposure is None:
        return None
    lo, hi = EXPOSURE_RANGE
    try:
        e = float(exposure)
    except (TypeError, ValueError):
        raise UsageError(f"exposure {exposure!r}: expected a number") from None
    if not (math.isfinite(e) and lo <= e <= hi):
        raise UsageError(
            f"exposure {exposure}: expected a number from {lo} to {hi:g} "
            "(1 is the method's own brightness)"
        )
    return e


def srgb_gain(exposure: float | None) -> float:
    """The gain on sRGB-encoded values that multiplies linear light by ``exposure``
    (sRGB ~ gamma 2.2): exposure ** (1 / 2.2); 1.0 for None."""
    return 1.0 if exposure is None else float(exposure) ** (1.0 / SRGB_GAMMA)


@dataclass
class EnhanceOptions:
    """What a user may choose for one run. ``None`` means the method's own default.

    ``exposure``: a multiplicative change of the output's linear light level (2: about twice
    the light, 0.5: about half), 1 or None = the method's own choice. Checked here
    (``check_exposure``); each pipeline maps it onto its own control (``exposure_doc``)."""

    steps: int | None = None
    seed: int = 0
    exposure: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific knobs
    progress: Progress | None = None

    def __post_init__(self):
        self.exposure = check_exposure(self.exposure)
        if self.steps is not None and int(self.steps) < 1:
            raise UsageError(f"steps {self.steps}: expected a whole number >= 1")

    def report(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)


Region = tuple[int, int, int, int]  # (y0, x0, y1, x1) of a tile in full-image pixels


def crop_ctx(t: torch.Tensor, region: Region, full_hw: tuple[int, int]) -> torch.Tensor:
    """Cut the part of a full-image map ``t`` (B,C,h,w at any resolution) that covers ``region``.

    A map stored at reduced resolution is resized to the full size of the region first, by
    bilinear interpolation over the region's footprint, so tiles see a seamless map. A region may
    reach past the image border (tiles padded to a size multiple): the map's edge is repeated.
    """
    y0, x0, y1, x1 = region
    H, W = full_hw
    h, w = t.shape[-2:]
    if (h, w) == (H, W):
        if y0 >= 0 and x0 >= 0 and y1 <= H and x1 <= W:
            return t[..., y0:y1, x0:x1]
        ys = torch.arange(y0, y1, device=t.device).clamp(0, H - 1)
        xs = torch.arange(x0, x1, device=t.device).clamp(0, W - 1)
        return t.index_select(-2, ys).index_select(-1, xs)
    # sample the low-res map at the pixel centres of the region (align_corners=False semantics)
    ys = (torch.arange(y0, y1, device=t.device, dtype=torch.float32) + 0.5) / H * 2 - 1
    xs = (torch.arange(x0, x1, device=t.device, dtype=torch.float32) + 0.5) / W * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(t.shape[0], -1, -1, -1)
    return nn.functional.grid_sample(
        t.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    ).to(t.dtype)


class Pipeline:
    """Base class: one subclass per method, in ``lumen_cli/methods/<name>/pipeline.py``."""

    method: ClassVar[str] = ""
    size_multiple: ClassVar[int] = 1  # tiles are padded to a multiple of this
    default_steps: ClassVar[int | None] = None  # None: not a sampling method
    # preset name -> {net name -> (arch name in lumen_cli.nets.registry, config dict)}
    presets: ClassVar[dict[str, dict[str, tuple[str, dict[str, Any]]]]] = {}
    default_preset: ClassVar[str] = "lite"
    # rough working memory per pixel of a tile (bytes, fp32), used by ``--tile auto``
    memory_per_pixel: ClassVar[int] = 4096
    # smallest tile overlap that keeps tiles invisible (the reach of the method's local filters)
    min_overlap: ClassVar[int] = 0
    # False for methods whose arithmetic must stay fp32 (reduced precision is then ignored)
    reduced_precision: ClassVar[bool] = True
    # whether ``decompose`` gives Retinex maps; set automatically from whether a subclass
    # overrides it (``lumen decompose`` / ``lumen_cli.decompose`` refuse the others cleanly)
    decomposes: ClassVar[bool] = False
    # how ``EnhanceOptions.exposure`` acts in this method (``lumen methods --verbose``)
    exposure_doc: ClassVar[str] = "a gain on the output's linear light"
    # True where the method's convolutions run faster on channels-last (NHWC) tensors: the loader
    # then stores its nets so and the runner hands it channels-last tiles (same values)
    channels_last: ClassVar[bool] = False
    # False where a tile's work is too light to share the CPU between tiles (its Python and
    # memory traffic then dominate): the runner runs its tiles one after another on all threads
    parallel_tiles: ClassVar[bool] = True
    # lumen additions that an ``EnhanceOptions.extra`` switches off, by name, e.g.
    # {"without bright skips": {"bright_skips": False}} (benchmarks/ablation.py measures them)
    ablations: ClassVar[dict[str, dict]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "decomposes" not in cls.__dict__:
            cls.decomposes = cls.decompose is not Pipeline.decompose

    def __init__(self, nets: dict[str, nn.Module] | None = None):
        self.nets = nn.ModuleDict(nets or {})
        self.nets.eval()
        self.device = torch.device("cpu")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build_nets(cls, preset: str | None = None, overrides: dict[str, dict] | None = None):
        """Fresh (randomly initialised) nets of a preset: {name: nn.Module}."""
        from lumen_cli.nets.registry import build_net

        preset = preset or cls.default_preset
        if preset not in cls.presets:
            raise ValueError(f"{cls.method}: unknown preset {preset!r}; have {sorted(cls.presets)}")
        out = {}
        for name, (arch, cfg) in cls.presets[preset].items():
            cfg = {**cfg, **((overrides or {}).get(name, {}))}
            out[name] = build_net(arch, cfg)
        return out

    @classmethod
    def stages(cls) -> list:
        """Training stages (``lumen_cli.train.stage.Stage``) in the order they run."""
        return []

    def to(self, device: torch.device | str) -> Pipeline:
        self.device = torch.device(device)
        self.nets.to(self.device)
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.nets.parameters())

    # -- inference ----------------------------------------------------------------------
    def analyze(self, x: torch.Tensor, opts: EnhanceOptions, generator: torch.Generator) -> dict:
        """Whole-image context. x: (1,3,H,W) float32 in [0,1], sRGB (gamma-encoded)."""
        return {}

    def enhance(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> torch.Tensor:
        """Enhance one tile. x: (B,3,h,w) float in [0,1] sRGB, on ``self.device``.

        Returns (B,3,h,w) in [0,1]. ``region`` locates the tile in the full image whose size
        is ``ctx['hw']`` (set by the runner).
        """
        raise NotImplementedError

    def decompose(
        self, x: torch.Tensor, ctx: dict, region: Region, opts: EnhanceOptions
    ) -> dict[str, torch.Tensor]:
        """Retinex maps of one tile: {'reflectance': (B,3,h,w), 'illumination': (B,1,h,w)},
        both in [0,1]. Methods may add more maps (e.g. 'reflectance_adjusted')."""
        raise NotImplementedError
