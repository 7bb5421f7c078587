"""Tiles with overlap, feathered blending weights and padding to a size multiple.

Pure geometry on index ranges and 1-D weights: ``lumen_cli.pipelines.run`` does the running.
A tile grid is the product of two 1-D splits, so the sum of all blending weights at a pixel is
the product of two 1-D sums and never needs a full-image weight buffer.
"""

from __future__ import annotations

import math
import os

import torch

CPU_TILE_BUDGET = 2e9  # bytes for one tile on the CPU (a 512x512 image stays one tile)


def split_1d(n: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Cover [0, n) with windows of length <= tile that overlap by at least ``overlap``.

    The fewest windows that can do it, each made as short as that count allows (rounded up to
    ``multiple``), evenly spaced: a 1024 px side with 800 px tiles gets two windows of about
    530 px, not two of 800 that overlap by 576 (2.4x the work in two dimensions)."""
    if tile >= n:
        return [(0, n)]
    overlap = min(overlap, tile // 2)
    count = math.ceil((n - overlap) / (tile - overlap))
    if count == 1:
        return [(0, tile)]
    length = -(-(n + (count - 1) * overlap) // count) + 1  # +1: room for rounding the starts
    length = min(tile, -(-length // multiple) * multiple)
    starts = [round(i * (n - length) / (count - 1)) for i in range(count)]
    return [(s, s + length) for s in starts]


def ramp_1d(start: int, stop: int, n: int, spans: list[tuple[int, int]]) -> torch.Tensor:
    """Feather weights of window [start, stop) along an axis of length n: they rise linearly
    over the part shared with the previous window and fall over the part shared with the next,
    and stay 1 at the image border."""
    length = stop - start
    w = torch.ones(length, dtype=torch.float32)
    i = spans.index((start, stop))
    if i > 0:
        shared = spans[i - 1][1] - start
        if shared > 0:
            w[:shared] = torch.minimum(w[:shared], (torch.arange(shared) + 1.0) / (shared + 1))
    if i + 1 < len(spans):
        shared = stop - spans[i + 1][0]
        if shared > 0:
            r = (torch.arange(shared, 0, -1) + 0.0) / (shared + 1)
            w[length - shared :] = torch.minimum(w[length - shared :], r)
    return w


def weight_sum_1d(n: int, spans: list[tuple[int, int]]) -> torch.Tensor:
    total = torch.zeros(n)
    for s, e in spans:
        total[s:e] += ramp_1d(s, e, n, spans)
    return total


def padded_window(start: int, stop: int, multiple: int) -> tuple[int, int]:
    """Grow [start, stop) on the far side so its length is a multiple of ``multiple``; the extra
    pixels lie past the image edge and are filled by reflection."""
    length = stop - start
    padded = math.ceil(length / multiple) * multiple
    return start, start + padded


def extract(x: torch.Tensor, y0: int, x0: int, y1: int, x1: int) -> torch.Tensor:
    """x[..., y0:y1, x0:x1] where the window may reach past the bottom/right border: the missing
    rows/columns are mirrored (reflection about the last pixel), as networks expect."""
    H, W = x.shape[-2:]
    core = x[..., y0 : min(y1, H), x0 : min(x1, W)].contiguous()
    ph, pw = y1 - min(y1, H), x1 - min(x1, W)
    if ph or pw:
        mode = "reflect" if ph < core.shape[-2] and pw < core.shape[-1] else "replicate"
        core = torch.nn.functional.pad(core, (0, pw, 0, ph), mode=mode)
    return core


def region_noise(
    seed: int,
    index: int,
    region: tuple[int, int, int, int],
    full_hw: tuple[int, int],
    channels: int = 3,
    block: int = 256,
) -> torch.Tensor:
    """(1,C,h,w) standard normal noise of ``region`` (y0, x0, y1, x1) of a (H, W) image: the
    image is cut into ``block`` x ``block`` squares, each drawn from its own CPU generator seeded
    by (seed, index, square), so any tile gets exactly the crop of the same whole-image noise
    while only the squares it touches are drawn. Rows and columns past the image repeat its
    edge (as ``crop_ctx``). ``index`` tells draws apart (e.g. a sampler's step)."""
    y0, x0, y1, x1 = region
    H, W = full_hw
    ys = torch.arange(y0, y1).clamp(0, H - 1)
    xs = torch.arange(x0, x1).clamp(0, W - 1)
    by0, by1 = int(ys.min()) // block, int(ys.max()) // block + 1
    bx0, bx1 = int(xs.min()) // block, int(xs.max()) // block + 1
    out = torch.empty(1, channels, (by1 - by0) * block, (bx1 - bx0) * block)
    for by in range(by0, by1):
        for bx in range(bx0, bx1):
            key = ((int(seed) * 1_000_003 + int(index)) * 1_000_003 + by) * 1_000_003 + bx
            g = torch.Generator().manual_seed(key % (2**63))
            out[..., (by - by0) * block : (by - by0 + 1) * block,
                (bx - bx0) * block : (bx - bx0 + 1) * block] = torch.randn(
                channels, block, block, generator=g
            )  # fmt: skip
    return out.index_select(-2, ys - by0 * block).index_select(-1, xs - bx0 * block)


def auto_tile(
    height: int, width: int, bytes_per_pixel: int, device: torch.device, multiple: int = 1
) -> int | None:
    """A square tile size that fits in a quarter of the free memory; None if the whole image fits.

    bytes_per_pixel: the pipeline's rough working memory per pixel at fp32.
    """
    free = _free_memory(device)
    budget = free / 4
    if device.type == "cpu":
        budget = min(budget, CPU_TILE_BUDGET)  # bigger tiles are no faster on a CPU
    if height * width * bytes_per_pixel <= budget:
        return None
    side = int(math.sqrt(budget / bytes_per_pixel))
    side = max(128, min(side, 2048))
    return max(multiple, side - side % max(multiple, 1))


def _free_memory(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4e9
