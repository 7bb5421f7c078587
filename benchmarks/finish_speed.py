"""Quality and cost of cheaper settings of the shadow finish (``lumen_cli.prior.finish``).

    python benchmarks/finish_speed.py --strides 1,2 --data ../shared/data/sice/train --every 7
    python benchmarks/finish_speed.py --strides 2,2/4,2/8 --methods kind,lldiffusion ...

A stride ``a/b`` uses a for the luma plane and b for the chroma planes (``a``: both).

For each tone-prior method (kind, diff-retinex: their ``lite`` presets with the bundled weights),
the outputs before the finish are computed once (``opts.extra["post"] = False``, the code of
``lumen enhance``), then ``finish_shadows`` is applied with each DCT window stride and scored
(the ``lumen eval`` protocol) against the references; the finish's own seconds per megapixel
are timed on the same images. Prints a markdown table (means over the pairs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="kind,diff-retinex")
    ap.add_argument("--strides", default="1,2", help="luma[/chroma] window steps, e.g. 2,2/4")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/sice/val")
    ap.add_argument("--every", type=int, default=1, help="use every k-th pair")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()

    import torch

    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image
    from lumen_cli.prior import finish
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    pairs = paired_files(args.data)[:: args.every]
    strides = args.strides.split(",")
    print(f"{len(pairs)} pairs of {args.data}, every {args.every}")
    print("| method | stride | PSNR | SSIM | finish s / MP |")
    print("|---|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        pipe = E.load_pipeline(method, None, "cpu")
        scores = {s: [] for s in strides}
        secs = {s: [] for s in strides}
        for lo, hi in pairs:
            x, gt = E.read_pixels(lo), E.read_pixels(hi)
            with torch.no_grad():
                raw = enhance_image(
                    pipe, x, EnhanceOptions(extra={"post": False}), precision=args.precision
                ).float()
                for s in strides:
                    t0 = time.perf_counter()
                    sy, _, sc = s.partition("/")
                    y = finish.dct_deblock(
                        x, raw.contiguous(), stride=int(sy), chroma_stride=int(sc or sy)
                    )
                    y = finish.shadow_floor(y)
                    secs[s].append((time.perf_counter() - t0) / (x.shape[-1] * x.shape[-2] / 1e6))
                    scores[s].append(E.score(y, gt))
        for s in strides:
            p = statistics.mean(v[0] for v in scores[s])
            q = statistics.mean(v[1] for v in scores[s])
            print(f"| {method} | {s} | {p:.3f} | {q:.4f} | {statistics.median(secs[s]):.2f} |")


if __name__ == "__main__":
    main()
