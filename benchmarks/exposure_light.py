"""What ``--exposure`` does to the light: the mean linear light of each method's output at
exposure 0.5 and 2, relative to exposure 1, on sice/val low images (area-downscaled for speed).

    python benchmarks/exposure_light.py --methods retinex,kind,diff-retinex --limit 8

``--exposure`` is defined as a multiplicative change of the output's linear light (1 = the
method's own choice), so the ratios should be about 0.5 and 2; above 1 they fall short where
highlights roll off or clip. Prints a Markdown table (median and range over the images).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

FACTORS = (0.5, 2.0)


def measure(method: str, files: list[Path], scale: float, steps: int | None) -> dict:
    import torch

    from lumen_cli.api import enhance_tensor, load
    from lumen_cli.ops.color import srgb_to_linear
    from lumen_cli.train.evaluate import read_pixels

    pipe = load(method, device="cpu")
    ratios: dict[float, list[float]] = {f: [] for f in FACTORS}
    for f in files:
        x = torch.nn.functional.interpolate(read_pixels(f), scale_factor=scale, mode="area")

        def light(e, x=x):
            y = enhance_tensor(pipe, x, exposure=e, steps=steps, precision="fp32")
            return float(srgb_to_linear(y.double()).mean())

        base = light(1.0)
        for e in FACTORS:
            ratios[e].append(light(e) / base)
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="retinex,kind,diff-retinex")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/sice/val"))
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--scale", type=float, default=0.25, help="area downscale of the inputs")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: method's)")
    args = ap.parse_args()
    from lumen_cli.train.data import paired_files

    files = [lo for lo, _ in paired_files(args.data)][: args.limit]
    print("| method | exposure 0.5: light ratio | exposure 2: light ratio |")
    print("|---|---|---|")
    for m in args.methods.split(","):
        r = measure(m.strip(), files, args.scale, args.steps)
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in r.values()]
        print(f"| {m} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
