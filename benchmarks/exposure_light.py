"""What ``--exposure`` does to the light: the mean linear light of each method's output at
exposure 0.5 and 2, relative to exposure 1, on sice/val low images (area-downscaled for speed).

    python benchmarks/exposure_light.py --methods retinex,kind,diff-retinex --limit 8

``--exposure`` is defined as a multiplicative change of the output's linear light (1 = the
method's own choice), so the ratios should be about 0.5 and 2; above 1 they fall short where
highlights roll off or clip. Prints a Markdown table (median and range over the images).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
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
    ap.add_argument(
        "--methods", default="retinex,kind,diff-retinex,lldiffusion,refusion,lighten-diffusion"
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data/sice/val"))
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--scale", type=float, default=0.25, help="area downscale of the inputs")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: method's)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "BENCHMARKS.md")
    args = ap.parse_args()
    from lumen_cli.errors import LumenError
    from lumen_cli.train.data import paired_files

    files = [lo for lo, _ in paired_files(args.data)][: args.limit]
    command = " ".join(["python benchmarks/exposure_light.py", shlex.join(sys.argv[1:])])
    lines = [
        "## `--exposure`: linear light relative to exposure 1",
        "",
        f"Written by `{command.strip()}` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC): {len(files)} sice/val low images, area-downscaled x{args.scale:g}, fp32; the "
        "mean linear light of the output at each exposure over that at exposure 1, median "
        "(range) over the images. The definition asks for 0.5 and 2; above 1 the ratio falls "
        "short where highlights roll off or clip.",
        "",
        "| method | exposure 0.5: light ratio | exposure 2: light ratio |",
        "|---|---|---|",
    ]
    for m in args.methods.split(","):
        try:
            r = measure(m.strip(), files, args.scale, args.steps)
        except LumenError as e:
            lines.append(f"| {m} | - | - ({str(e).splitlines()[0][:80]}) |")
            continue
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in r.values()]
        lines.append(f"| {m} | {' | '.join(cells)} |")
    print("\n".join(lines))
    if args.out:
        from sections import replace_section

        text = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(text, "<!-- exposure-light -->", lines))


if __name__ == "__main__":
    main()
