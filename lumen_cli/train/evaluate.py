"""Measuring a method on paired data (``lumen eval``, the benchmark script).

Protocol: the ``low/`` image of each pair is enhanced by the same code as ``lumen enhance``
(``lumen_cli.api.enhance_tensor``, seed 0), and the result is scored against the
``high/`` image by ``lumen_cli.metrics`` (PSNR on 8-bit RGB; SSIM with an 11x11 Gaussian window,
sigma 1.5, per RGB channel then averaged). Seconds per image time ``enhance_tensor`` alone
(decoding and writing excluded). Scores of a folder of existing outputs (``--pred``) use the
same metrics, so outputs saved with ``--save-dir`` and re-scored give the same numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lumen_cli import metrics
from lumen_cli.errors import UsageError
from lumen_cli.pipelines.load import load_pipeline  # noqa: F401  (re-exported)


@dataclass
class Record:
    name: str
    psnr: float
    ssim: float
    seconds: float | None = None  # enhancement time (None when scoring existing outputs)
    lpips: float | None = None  # only when LPIPS weights exist locally


def read_pixels(path: Path) -> torch.Tensor:
    """(1,3,H,W) float32 in [0,1] sRGB, decoded by ``lumen_cli.io``."""
    from lumen_cli.io import read_image

    px = read_image(path).pixels[..., :3]
    return torch.from_numpy(np.ascontiguousarray(px)).permute(2, 0, 1)[None].float()


def score(pred: torch.Tensor, gt: torch.Tensor, name: str = "") -> tuple[float, float]:
    """(psnr, ssim) of one image pair, (1,3,H,W) each."""
    if pred.shape != gt.shape:
        raise UsageError(
            f"{name}: output {tuple(pred.shape[-2:])} and reference {tuple(gt.shape[-2:])} "
            "differ in size"
        )
    return float(metrics.psnr(pred, gt)), float(metrics.ssim(pred, gt))


def evaluate_method(
    pipe,
    pairs: list[tuple[Path, Path]],
    *,
    steps: int | None = None,
    seed: int = 0,
    precision: str = "auto",
    tile: Any = "auto",
    save_dir: Path | None = None,
    on_image: Callable[[Record, int, int], None] | None = None,
    lpips_fn: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
) -> list[Record]:
    """Enhance each low image, score it against its reference; optionally save PNG outputs."""
    from lumen_cli.api import enhance_tensor

    out: list[Record] = []
    for i, (lo, hi) in enumerate(pairs):
        x, y = read_pixels(lo), read_pixels(hi)
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = enhance_tensor(pipe, x, steps=steps, seed=seed, tile=tile, precision=precision)
        dt = time.perf_counter() - t0
        pred = pred.detach().float().cpu().clamp(0, 1)
        p, s = score(pred, y, lo.name)
        rec = Record(lo.name, p, s, dt, lpips_fn(pred, y) if lpips_fn else None)
        out.append(rec)
        if save_dir is not None:
            save_png(pred, lo, Path(save_dir) / (lo.stem + ".png"))
        if on_image:
            on_image(rec, i + 1, len(pairs))
    return out


def save_png(pred: torch.Tensor, source: Path, dest: Path) -> None:
    from lumen_cli.io import read_image, write_image

    dest.parent.mkdir(parents=True, exist_ok=True)
    px = pred[0].permute(1, 2, 0).contiguous().numpy()
    write_image(read_image(source), px, dest, format="png", bit_depth=8)


def matched_files(pred_dir: Path, gt_dir: Path) -> list[tuple[Path, Path]]:
    """(pred, gt) pairs matched by file name, then by stem (outputs are often .png)."""
    from lumen_cli.train.data import list_images, match_by_name

    pairs = match_by_name(list_images(pred_dir), list_images(gt_dir))
    if not pairs:
        raise UsageError(f"no file in {pred_dir} has a partner of the same name in {gt_dir}")
    return pairs


def evaluate_folders(
    pred_dir: Path, gt_dir: Path, limit: int | None = None, lpips_fn=None
) -> list[Record]:
    out = []
    for p, g in matched_files(pred_dir, gt_dir)[:limit]:
        x, y = read_pixels(p), read_pixels(g)
        out.append(Record(p.name, *score(x, y, p.name), None, lpips_fn(x, y) if lpips_fn else None))
    return out


def summarize(records: list[Record]) -> dict[str, Any]:
    ps = [r.psnr for r in records]
    ss = [r.ssim for r in records]
    ts = [r.seconds for r in records if r.seconds is not None]
    out = {
        "n": len(records),
        "psnr_mean": metrics.summarize(ps)["mean"],
        "psnr_median": metrics.summarize(ps)["median"],
        "ssim_mean": sum(ss) / len(ss) if ss else float("nan"),
        "ssim_median": statistics.median(ss) if ss else float("nan"),
        "seconds_mean": sum(ts) / len(ts) if ts else None,
        "seconds_median": statistics.median(ts) if ts else None,
    }
    lp = [r.lpips for r in records if r.lpips is not None]
    if lp:
        out["lpips_mean"] = sum(lp) / len(lp)
    n_inf = metrics.summarize(ps)["n_inf"]
    if n_inf:
        out["psnr_identical_images"] = n_inf  # infinite PSNR, left out of the mean
    return out


def lpips_status() -> tuple[bool, str]:
    """Whether LPIPS can be computed from weights already on this machine (never downloads)."""
    try:
        import lpips  # noqa: F401
    except ImportError:
        return False, "unavailable (the lpips package is not installed)"
    lin = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    backbone = list(hub.glob("alexnet-owt-*.pth")) if hub.is_dir() else []
    if not lin.exists() or not backbone:
        return False, "unavailable (LPIPS/AlexNet weights are not present locally)"
    return True, "available"


def lpips_scorer():
    """-> fn(pred, gt) -> float, LPIPS-Alex on [-1,1] inputs; only when lpips_status() is ok."""
    import lpips

    net = lpips.LPIPS(net="alex", verbose=False).eval()

    def fn(pred: torch.Tensor, gt: torch.Tensor) -> float:
        with torch.no_grad():
            return float(net(pred * 2 - 1, gt * 2 - 1).mean())

    return fn


def records_as_dicts(records: list[Record]) -> list[dict]:
    return [asdict(r) for r in records]
