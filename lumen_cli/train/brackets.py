"""Paired training data from exposure brackets: ``lumen train pairs``.

A tripod bracket (several exposures of one scene) holds its own ground truth: the best-exposed
frame is the target and each much darker frame is a low-light input. This is the rule the
``sice`` pairs were made with (SOURCE.md there), so it turns unpaired bracket frames into more
pairs of the same kind:

- frames are grouped into scenes by a file-name pattern (default: the part before the first
  ``_``, as in ``s042_0317.jpg``);
- the target is the frame whose mean luma is nearest ``target_luma`` (0.45) among frames with
  at most ``max_clip`` of their pixels clipped (luma >= 0.97);
- a low input is every frame with mean luma at most ``ratio`` (0.4) times the target's and at
  most ``max_low_luma`` (0.22), whose structure matches the target's (Spearman rank correlation
  of 32x32 luma >= ``min_corr``, 0.75): that drops frames from a different scene or a moved
  camera.

The output folder gets ``low/`` and ``high/`` (a low and its target share a file name) as
symbolic links to the source files (``copy=True`` copies them), plus ``pairs.csv``.
Scenes found in ``exclude`` folders (for example the validation set) are skipped, so no scene
leaks from validation into training.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumen_cli.ops.color import LUMA
from lumen_cli.train.data import list_images, read_rgb8

DEFAULT_SCENE_PATTERN = r"^([^_]+)_"
_LUMA = np.array(LUMA, np.float32)


@dataclass
class Frame:
    path: Path
    mean: float
    clipped: float
    thumb: np.ndarray  # 32x32 luma


def scene_of(name: str, pattern: str = DEFAULT_SCENE_PATTERN) -> str | None:
    m = re.search(pattern, name)
    return m.group(1) if m else None


def _frame(path: Path) -> Frame:
    import cv2

    luma = read_rgb8(path).astype(np.float32) @ _LUMA / 255.0
    thumb = cv2.resize(luma, (32, 32), interpolation=cv2.INTER_AREA)
    return Frame(path, float(luma.mean()), float((luma >= 0.97).mean()), thumb)


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally sized arrays (exposure-invariant structure)."""
    ra = np.argsort(np.argsort(a.ravel(), kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b.ravel(), kind="stable"), kind="stable").astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def bracket_pairs(
    frames: list[Frame],
    target_luma: float = 0.45,
    max_clip: float = 0.05,
    ratio: float = 0.4,
    max_low_luma: float = 0.22,
    min_corr: float = 0.75,
) -> list[tuple[Frame, Frame, float]]:
    """(low, target, structure correlation) for one scene's frames, by the rule above."""
    if len(frames) < 2:
        return []
    ok = [f for f in frames if f.clipped <= max_clip] or frames
    target = min(ok, key=lambda f: abs(f.mean - target_luma))
    out = []
    for f in frames:
        if f is target or f.mean > ratio * target.mean or f.mean > max_low_luma:
            continue
        c = rank_corr(f.thumb, target.thumb)
        if c >= min_corr:
            out.append((f, target, c))
    return out


def _place(src: Path, dst: Path, copy: bool) -> None:
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if copy:
        shutil.copy2(src, dst)
    else:
        os.symlink(os.path.abspath(src), dst)


def make_pairs(
    sources: list[Path],
    out: Path,
    exclude: list[Path] = (),
    pattern: str = DEFAULT_SCENE_PATTERN,
    copy: bool = False,
    **rule,
) -> dict:
    """Write ``out/low``, ``out/high`` and ``out/pairs.csv`` from the bracket frames in
    ``sources`` (folders). Returns counts: scenes, pairs, skipped (excluded) scenes."""
    banned = set()
    for ex in exclude:
        for p in Path(ex).rglob("*"):
            s = scene_of(p.name, pattern)
            if s is not None and p.is_file():
                banned.add(s)
    scenes: dict[str, list[Path]] = {}
    for folder in sources:
        for p in list_images(Path(folder)):
            s = scene_of(p.name, pattern)
            if s is not None:
                scenes.setdefault(s, []).append(p)
    out = Path(out)
    (out / "low").mkdir(parents=True, exist_ok=True)
    (out / "high").mkdir(parents=True, exist_ok=True)
    rows, used, skipped = [], 0, 0
    for s in sorted(scenes):
        if s in banned:
            skipped += 1
            continue
        pairs = bracket_pairs([_frame(p) for p in sorted(scenes[s])], **rule)
        used += bool(pairs)
        for low, tgt, corr in pairs:
            name = low.path.name
            _place(low.path, out / "low" / name, copy)
            _place(tgt.path, out / "high" / (Path(name).stem + tgt.path.suffix), copy)
            rows.append(
                [
                    name,
                    low.path.name,
                    tgt.path.name,
                    f"{low.mean:.4f}",
                    f"{tgt.mean:.4f}",
                    f"{corr:.3f}",
                ]
            )
    with open(out / "pairs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["name", "src_low", "src_high", "low_mean_luma", "high_mean_luma", "structure_corr"]
        )
        w.writerows(rows)
    return {"scenes": used, "pairs": len(rows), "excluded_scenes": skipped}
