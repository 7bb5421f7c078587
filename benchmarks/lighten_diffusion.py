"""lighten-diffusion's rows of BENCHMARKS.md, beside identity and retinex: PSNR/SSIM on the val
pairs at 5/10/20/50 sampling steps, the no-reference figures on the LOL eval15 night photos,
and the whole ``lumen enhance`` process per 512x512 image at the default 20 steps.

    python benchmarks/lighten_diffusion.py --weights FILE.safetensors   # or the shipped file

Each row runs in a fresh subprocess through ``benchmarks/run.py``'s worker (the ``lumen eval``
protocol, seed 0); the whole-process timing is ``benchmarks/process.py``'s. Writes the marked
section ``<!-- lighten-diffusion -->`` of BENCHMARKS.md (``run.py`` carries it over).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run as R  # noqa: E402
from sections import replace_section  # noqa: E402

MARK = "<!-- lighten-diffusion -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="lighten-diffusion weights (default: shipped)")
    ap.add_argument("--steps", default="5,10,20,50")
    ap.add_argument("--baselines", default="identity,retinex")
    ap.add_argument("--val", type=Path, default=R.DEFAULT_VAL)
    ap.add_argument("--lol", type=Path, default=R.DEFAULT_LOL if R.DEFAULT_LOL.is_dir() else None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", type=int, default=3, help="whole-process runs after a warm-up")
    ap.add_argument("--out", type=Path, default=HERE.parent / "BENCHMARKS.md")
    args = ap.parse_args()
    args.weights_map = {"lighten-diffusion": args.weights} if args.weights else {}
    args.no_12mp, args.exposures, args.timeout = True, "", 3600
    command = " ".join(["python benchmarks/lighten_diffusion.py", shlex.join(sys.argv[1:])])
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lumen-ld-") as tmp:
        rows = [R.run_one(m, None, args, Path(tmp)) for m in args.baselines.split(",") if m]
        for s in (int(v) for v in args.steps.split(",")):
            rows.append(R.run_one("lighten-diffusion", s, args, Path(tmp)))
        from process import markdown, measure_method

        pair = next(iter(sorted(Path(args.val, "low").glob("*"))), None)
        proc = measure_method(
            "lighten-diffusion",
            Path(tmp),
            source=pair,
            runs=args.runs,
            big=(),
            batch=0,
            weights=args.weights,
        )
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## lighten-diffusion: step sweep, night photos, whole process",
        "",
        f"Written by `{command}` ({when}, 1-min load average {load:.2f} at start). Val: "
        f"`{args.val}`, the `lumen eval` protocol (seed 0, precision `{args.precision}`); "
        "s / 512² is the in-process median per val image.",
        "",
        "| method | params | PSNR (dB) | SSIM | s / 512² | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        label = r.get("label") or r["method"]
        if r.get("status") != "ok":
            lines.append(f"| {label} | - | - | - | - | {r.get('status', '')} |")
            continue
        lines.append(
            f"| {label} | {r['params']:,} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['s_512']:.3f} | {r['rss_mb']:.0f} |"
        )
    lines += R._lol_markdown(rows, args)
    lines += ["", "Whole `lumen enhance` process (benchmarks/process.py), 20 steps:", ""]
    lines += markdown([proc])
    text = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(replace_section(text, MARK, lines))
    print(f"wrote the {MARK} section of {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
