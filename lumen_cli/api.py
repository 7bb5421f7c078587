"""The library API: ``lumen_cli.enhance`` and ``lumen_cli.decompose``.

    import lumen_cli
    from PIL import Image

    out = lumen_cli.enhance(Image.open("dark.jpg"), method="kind")
    out.save("bright.png")

Inputs and what comes back:

- a PIL image -> a PIL image (RGB; an alpha channel is carried over unchanged);
- a numpy array (H,W,3) or (H,W) -> an array (H,W,3) of the same dtype: uint8 and uint16 use
  their full range, floats are read as [0,1] and come back as float32 in [0,1];
- a path (str or ``os.PathLike``) -> a PIL image (8-bit RGB). The file is decoded by
  ``lumen_cli.io`` (EXIF orientation applied, colour profile converted to sRGB); to write
  results with their metadata and bit depth kept, use ``lumen enhance``.

``decompose`` returns a dict of maps ({'reflectance', 'illumination', ...}) of the same kind;
single-channel maps are (H,W) arrays or mode "L" images.

Both run ``enhance_tensor`` / ``decompose_tensor``, which the CLI, ``lumen eval`` and the
benchmark scripts call on (1,3,H,W) tensors: one place resolves the step count, checks
``exposure`` (a multiplicative change of the output's linear light, 1 = the method's own
choice) and runs the tiled pipeline. Loaded pipelines are cached per (method, weights, device).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from lumen_cli.pipelines.registry import DEFAULT_METHOD  # imports no torch

_DEFAULTS = {"tile": "auto", "overlap": 32, "precision": "auto"}


@functools.lru_cache(maxsize=4)
def _cached_pipeline(method: str, weights: str | None, device: str):
    from lumen_cli.pipelines.load import load_pipeline

    return load_pipeline(method, weights, device)


def load(method: str = DEFAULT_METHOD, weights: str | os.PathLike | None = None, device="auto"):
    """The method's pipeline with its weights on ``device`` ('auto', 'cpu', 'cuda', ...),
    cached: repeated calls with the same arguments return the same object."""
    from lumen_cli import devices

    dev = str(devices.pick_device(str(device)))
    return _cached_pipeline(method, None if weights is None else os.fspath(weights), dev)


def _options(pipe, steps, seed, exposure, extra, progress):
    from lumen_cli.pipelines.base import EnhanceOptions

    steps = pipe.default_steps if steps is None else steps
    return EnhanceOptions(steps, int(seed), exposure, dict(extra or {}), progress)


def enhance_tensor(
    pipe,
    x,
    *,
    steps: int | None = None,
    seed: int = 0,
    exposure: float | None = None,
    extra: dict[str, Any] | None = None,
    progress=None,
    **run: Any,
):
    """x: (1,3,H,W) float32 in [0,1] sRGB (CPU) -> (1,3,H,W) float32 in [0,1] (CPU).
    ``run``: ``tile`` ('auto', pixels or None), ``overlap``, ``precision`` of
    ``lumen_cli.pipelines.run.enhance_image``."""
    from lumen_cli.pipelines.run import enhance_image

    opts = _options(pipe, steps, seed, exposure, extra, progress)
    return enhance_image(pipe, x, opts, **{**_DEFAULTS, **run})


def decompose_tensor(
    pipe,
    x,
    *,
    steps: int | None = None,
    seed: int = 0,
    exposure: float | None = None,
    extra: dict[str, Any] | None = None,
    progress=None,
    **run: Any,
):
    """x: (1,3,H,W) -> {'reflectance': (1,3,H,W), 'illumination': (1,1,H,W), ...} in [0,1];
    UsageError for a method that has no decomposition (``Pipeline.decomposes``)."""
    from lumen_cli.errors import UsageError
    from lumen_cli.pipelines.run import decompose_image

    if not pipe.decomposes:
        raise UsageError(f"method {pipe.method!r} has no Retinex decomposition")
    opts = _options(pipe, steps, seed, exposure, extra, progress)
    return decompose_image(pipe, x, opts, **{**_DEFAULTS, **run})


# -- images in, images out --------------------------------------------------------------------
def _to_tensor(image) -> tuple[Any, dict]:
    """-> ((1,3,H,W) float32 tensor in [0,1], how to give results back)."""
    import numpy as np
    import torch

    from lumen_cli.errors import UsageError

    if isinstance(image, (str, os.PathLike)):
        from lumen_cli.io import read_image

        px = read_image(Path(image)).pixels[..., :3]
        kind = {"kind": "pil", "alpha": None}
    elif type(image).__module__.startswith("PIL."):
        alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
        mode = "I;16" if image.mode.startswith("I;16") else image.mode
        if mode == "I;16":
            px = np.asarray(image, dtype=np.float32)[..., None].repeat(3, 2) / 65535.0
        else:
            px = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        kind = {"kind": "pil", "alpha": alpha}
    elif isinstance(image, np.ndarray):
        a = image[..., None].repeat(3, 2) if image.ndim == 2 else image
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise UsageError(f"expected an (H,W,3) or (H,W) array, got shape {image.shape}")
        a = a[..., :3]
        if a.dtype == np.uint8:
            px = a.astype(np.float32) / 255.0
        elif a.dtype == np.uint16:
            px = a.astype(np.float32) / 65535.0
        elif np.issubdtype(a.dtype, np.floating):
            px = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
        else:
            raise UsageError(f"array dtype {a.dtype}: expected uint8, uint16 or float")
        kind = {"kind": "array", "dtype": image.dtype}
    else:
        raise UsageError(f"expected a PIL image, a numpy array or a path, not {type(image)}")
    x = torch.from_numpy(np.ascontiguousarray(px)).permute(2, 0, 1)[None].float()
    return x, kind


def _from_tensor(t, kind: dict):
    """(1,C,H,W) in [0,1] -> the kind the input was (C = 1 gives (H,W) / mode "L")."""
    import numpy as np

    a = t[0].permute(1, 2, 0).float().clamp(0, 1).numpy()
    if a.shape[2] == 1:
        a = a[..., 0]
    if kind["kind"] == "array":
        dt = np.dtype(kind["dtype"])
        if dt == np.uint8:
            return np.round(a * 255.0).astype(np.uint8)
        if dt == np.uint16:
            return np.round(a * 65535.0).astype(np.uint16)
        return a.astype(np.float32)
    from PIL import Image

    im = Image.fromarray(np.round(a * 255.0).astype(np.uint8))
    if kind.get("alpha") is not None and im.mode == "RGB":
        im.putalpha(kind["alpha"])
    return im


def enhance(
    image,
    method: str = DEFAULT_METHOD,
    *,
    steps: int | None = None,
    seed: int = 0,
    exposure: float | None = None,
    device: str = "auto",
    weights: str | os.PathLike | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
):
    """Enhance one low-light image with ``method`` (see ``lumen methods``); returns the same
    kind of image (a path gives a PIL image). ``steps``: sampling steps of diffusion methods
    (None: the method's default); ``seed``: the sampling noise (the same on any device);
    ``exposure``: multiplies the output's linear light (1 or None: the method's own choice);
    ``tile``: 'auto', a tile size in pixels, or None (whole image); ``precision``: 'auto',
    'fp32', 'bf16' or 'fp16'."""
    x, kind = _to_tensor(image)
    pipe = load(method, weights, device)
    y = enhance_tensor(
        pipe, x, steps=steps, seed=seed, exposure=exposure, tile=tile, precision=precision
    )
    return _from_tensor(y, kind)


def decompose(
    image,
    method: str = DEFAULT_METHOD,
    *,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    weights: str | os.PathLike | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
) -> dict:
    """Retinex maps of one image: {'reflectance': RGB, 'illumination': single channel, ...},
    each of the input's kind. UsageError for methods without a decomposition."""
    x, kind = _to_tensor(image)
    pipe = load(method, weights, device)
    maps = decompose_tensor(pipe, x, steps=steps, seed=seed, tile=tile, precision=precision)
    return {k: _from_tensor(v, kind) for k, v in maps.items()}


__all__ = ["decompose", "decompose_tensor", "enhance", "enhance_tensor", "load"]
