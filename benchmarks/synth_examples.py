"""Show what ``lumen train --synthesize`` makes: synthetic low-light versions of normal photos next
to real dark photos, as one PNG (bench_out/synth_examples.png; git-ignored, it shows dataset
images). Each row: real low (SICE) | normal (SICE high) | three synthetic draws | the first draw
brightened 4x (so its shot/read noise is visible) | a real LOL low-light photo.

    python benchmarks/synth_examples.py [--sice DIR] [--lol DIR] [--rows 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CELL = 256


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sice", type=Path, default=DATA / "sice" / "val")
    ap.add_argument("--lol", type=Path, default=DATA / "lol" / "eval15" / "low")
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out" / "synth_examples.png")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from PIL import Image, ImageDraw

    from lumen_cli.train.data import list_images, paired_files, read_rgb8
    from lumen_cli.train.synth import synthesize_low

    pairs = paired_files(args.sice)
    lols = list_images(args.lol) if args.lol.is_dir() else []
    pick = np.linspace(0, len(pairs) - 1, args.rows).round().astype(int)

    def cell(a: np.ndarray, gain: float = 1.0) -> Image.Image:
        a = np.clip(a.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        im = Image.fromarray(a)
        return im.resize((CELL, round(CELL * im.height / im.width)), Image.Resampling.BOX)

    labels = [
        "real low (SICE)",
        "normal (SICE)",
        "synthetic",
        "synthetic",
        "synthetic",
        "synthetic x4 bright",
        "real low (LOL)",
    ]
    rows = []
    for r, i in enumerate(pick):
        lo, hi = (read_rgb8(p) for p in pairs[i])
        draws = [synthesize_low(hi, np.random.default_rng([r, k])) for k in range(3)]
        row = [cell(lo), cell(hi), *(cell(d) for d in draws), cell(draws[0], 4.0)]
        if lols:
            row.append(cell(read_rgb8(lols[r % len(lols)])))
        rows.append(row)
    head = 16
    h = max(c.height for row in rows for c in row)
    sheet = Image.new("RGB", (CELL * len(rows[0]), (h + head) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, row in enumerate(rows):
        for x, c in enumerate(row):
            sheet.paste(c, (x * CELL, y * (h + head) + head))
            draw.text((x * CELL + 4, y * (h + head) + 2), labels[x], fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
