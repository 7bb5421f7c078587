"""Run a pipeline over a whole image: global analysis once, then tiles, blended seamlessly.

The one code path shared by ``lumen enhance``, ``lumen decompose``, ``lumen eval`` and the
validation inside ``lumen train``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from lumen_cli import devices, tiling
from lumen_cli.errors import ComputeError
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, Region

TileFn = Callable[[torch.Tensor, dict, Region], dict[str, torch.Tensor]]
MIN_SIDE = 64  # a method failing on a shorter side is run again on an enlarged copy


def enhance_image(
    pipe: Pipeline,
    x: torch.Tensor,
    opts: EnhanceOptions | None = None,
    *,
    tile: int | str | None = "auto",
    overlap: int = 32,
    precision: str = "auto",
) -> torch.Tensor:
    """x: (1,3,H,W) float32 in [0,1] sRGB (CPU; may be a non-contiguous view).
    Returns (1,3,H,W) float32 in [0,1] on the CPU (a channels-last view of an HWC buffer)."""
    opts = opts or EnhanceOptions()

    def call(t, ctx, region):
        return {"image": pipe.enhance(t, ctx, region, opts)}

    return run_tiled(pipe, x, opts, call, {"image": 3}, tile, overlap, precision)["image"]


def decompose_image(
    pipe: Pipeline,
    x: torch.Tensor,
    opts: EnhanceOptions | None = None,
    *,
    tile: int | str | None = "auto",
    overlap: int = 32,
    precision: str = "auto",
) -> dict[str, torch.Tensor]:
    """Retinex maps of a whole image: {'reflectance': (1,3,H,W), 'illumination': (1,1,H,W), ...}."""
    opts = opts or EnhanceOptions()
    probe = {}

    def call(t, ctx, region):
        out = pipe.decompose(t, ctx, region, opts)
        probe.update({k: v.shape[1] for k, v in out.items()})
        return out

    return run_tiled(pipe, x, opts, call, probe, tile, overlap, precision)


def run_tiled(
    pipe: Pipeline,
    x: torch.Tensor,
    opts: EnhanceOptions,
    call: TileFn,
    channels: dict[str, int],
    tile: int | str | None,
    overlap: int,
    precision: str,
) -> dict[str, torch.Tensor]:
    """Analyse the whole image, then run ``call`` per tile and blend the outputs.

    ``channels`` names the outputs and their channel counts; it may start empty and is then
    filled by the first tile (outputs are allocated lazily). Images with sides shorter than a
    pipeline's ``min_size`` (if it declares one) are enlarged for it (see ``_upsize``); if the
    method fails on an image with a side under MIN_SIDE, it is run again on a copy enlarged to
    MIN_SIDE. Raises ComputeError if an output holds NaN/inf after the fp32 retry.
    """
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected x of shape (1,3,H,W), got {tuple(x.shape)}")
    x1, factors = _upsize(x, getattr(pipe, "min_size", 1))
    try:
        result = _run_tiled(pipe, x1, opts, call, channels, tile, overlap, precision)
    except Exception:
        if min(x1.shape[-2:]) >= MIN_SIDE:
            raise
        # too small for this method's filters or U-Net levels: once more with room enough
        x1, factors = _upsize(x, max(MIN_SIDE, pipe.size_multiple))
        result = _run_tiled(pipe, x1, opts, call, channels, tile, overlap, precision)
    for k, v in result.items():
        if not bool(torch.isfinite(v).all()):
            raise ComputeError(
                f"the method gave NaN/inf values for {k!r}, even in fp32 "
                "(damaged weights, or an input it cannot handle); nothing written"
            )
        if factors != (1, 1):
            result[k] = torch.nn.functional.avg_pool2d(v.double(), factors).float()
    return result


def _upsize(x: torch.Tensor, side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Tiny images (1x1, 2x2, 1x50, 24x32 ...): each pixel repeated (kh, kw) times so both sides
    reach ``side`` and every method's filters, nets and pyramids have room; the histogram and
    so the image-global decisions stay the same. The runner averages each (kh, kw) block of
    the outputs back to one pixel. Returns (x or the enlarged copy, (kh, kw))."""
    H, W = x.shape[-2:]
    kh, kw = -(-side // H) if H < side else 1, -(-side // W) if W < side else 1
    if (kh, kw) == (1, 1):
        return x, (1, 1)
    return x.float().repeat_interleave(kh, -2).repeat_interleave(kw, -1), (kh, kw)


def _run_tiled(pipe, x, opts, call, channels, tile, overlap, precision):
    device = pipe.device
    dtype = devices.resolve_precision(precision, device)
    if not pipe.reduced_precision:
        dtype = torch.float32
    H, W = x.shape[-2:]
    overlap = max(overlap, pipe.min_overlap)
    mult = max(1, pipe.size_multiple)
    if tile == "auto":
        tile = tiling.auto_tile(H, W, pipe.memory_per_pixel, device, mult)
    if tile is not None:
        tile = max(int(tile), 2 * overlap + mult, mult)
        tile -= tile % mult
    gen = devices.make_generator(opts.seed)

    with torch.inference_mode():
        ctx = _with_fallback(
            lambda d: pipe.analyze(x, opts, devices.make_generator(opts.seed)), device, dtype
        )
        ctx["hw"] = (H, W)
        ys = tiling.split_1d(H, tile or H, overlap, mult)
        xs = tiling.split_1d(W, tile or W, overlap, mult)
        wy_sum = tiling.weight_sum_1d(H, ys)
        wx_sum = tiling.weight_sum_1d(W, xs)
        regions = [(y0, y1, x0, x1) for y0, y1 in ys for x0, x1 in xs]

        def run_tile(y0, y1, x0, x1):
            py1 = tiling.padded_window(y0, y1, mult)[1]
            px1 = tiling.padded_window(x0, x1, mult)[1]
            t = tiling.extract(x, y0, x0, py1, px1).to(device, torch.float32)
            if pipe.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            region = (y0, x0, py1, px1)
            with torch.inference_mode():  # per thread, as autocast inside _with_fallback
                return _with_fallback(lambda d: call(t, ctx, region), device, dtype)

        outs: dict[str, torch.Tensor] = {}
        workers = devices.tile_workers(device, len(regions)) if pipe.parallel_tiles else 1
        for done, ((y0, y1, x0, x1), res) in enumerate(
            zip(regions, in_order(run_tile, regions, workers)), 1
        ):
            w = tiling.ramp_1d(y0, y1, H, ys)[:, None] * tiling.ramp_1d(x0, x1, W, xs)[None]
            for k, v in res.items():
                v = v[0, :, : y1 - y0, : x1 - x0].float().cpu()
                if k not in outs:
                    outs[k] = torch.zeros(H, W, v.shape[0])
                outs[k][y0:y1, x0:x1] += (v * w).permute(1, 2, 0)
            opts.report("tile", done, len(regions))
        del gen
        norm = (wy_sum[:, None] * wx_sum[None]).unsqueeze(-1)
        result = {}
        for k, acc in outs.items():
            acc.div_(norm).clamp_(0, 1)
            result[k] = acc.permute(2, 0, 1).unsqueeze(0)
    return result


def in_order(fn, items: list[tuple], workers: int = 1):
    """Yield ``fn(*item)`` for each item, in order. With ``workers`` > 1 the first item runs
    here (a pipeline may fill its context lazily at its first tile, e.g. the whole image's
    light), then the rest on that many threads, each set up by ``devices.configure_cpu`` with
    its share of torch's threads; at most 2 x ``workers`` items are in flight or waiting to be
    taken, so memory stays bounded. The caller's thread count is restored at the end. Each
    item's result is the one it has when run alone on as many threads."""
    if workers <= 1 or len(items) < 2:
        yield from (fn(*item) for item in items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    yield fn(*items[0])
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(
        workers,
        "lumen-tile",
        initializer=devices.configure_cpu,
        initargs=(max(1, threads // workers),),
    )
    try:
        rest = iter(items[1:])
        pending = deque(pool.submit(fn, *item) for item in islice(rest, 2 * workers))
        while pending:
            result = pending.popleft().result()
            item = next(rest, None)
            if item is not None:
                pending.append(pool.submit(fn, *item))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def _finite(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_finite(v) for v in obj)
    return True


def _with_fallback(fn, device: torch.device, dtype: torch.dtype):
    """Run ``fn`` under autocast; if reduced precision gives NaN/inf, run it again in fp32."""
    with devices.autocast(device, dtype):
        out = fn(dtype)
    if dtype is not torch.float32 and not _finite(out):
        warnings.warn(
            f"{devices.describe(device, dtype)} gave non-finite values; recomputed in fp32",
            RuntimeWarning,
            stacklevel=3,
        )
        out = fn(torch.float32)
    return out
