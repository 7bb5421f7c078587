"""What limits the learned methods on sice/val: oracles that peek at the reference.

    python benchmarks/ceiling.py                      # kind and diff-retinex (20 steps)
    python benchmarks/ceiling.py --methods kind --train-every 7

The methods' ``lite`` presets start from a global tone prior T(x) (per-image, per-channel
curves predicted from the low image, ``lumen_cli.pipelines.tone``) and let their restoration /
diffusion nets change only detail. For each method this script measures, on every val pair:

- output: the method itself (the ``lumen eval`` protocol, same ``enhance_image``);
- output, exposure oracle: the output under the one linear-light gain that gives it the
  reference's mean luma (how much a perfect exposure guess would add);
- tone base: T(x) alone, with the method's own curves (its chroma and luma denoising
  included), i.e. what the nets start from;
- tone oracle: T(x) with the curves of the same family fitted to the reference
  (``nets.tone.fit_curves``, least squares): the best any curve predictor could do;
- the output's SSIM factors (``metrics.ssim_components``): luminance, contrast, structure,
  and the mean local standard deviation of output and reference.

With ``--train-every N`` the output, the tone base and the tone oracle are also measured on
every N-th training pair: when tone base and oracle agree there, the curve net fits its
training data, and the gap on val is one of generalisation to new scenes; the output there
shows how far the whole method gets on pairs it was trained on. Writes benchmarks/CEILING.md
(means over images).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sice"
FIT_STRIDE = 2  # fit_curves sees every 2nd pixel in each direction (a quarter of them)


def exposure_oracle(out: torch.Tensor, ref: torch.Tensor, rounds: int = 10) -> torch.Tensor:
    """out under the linear-light gain (sRGB ~ gamma 2.2) that matches ref's mean luma."""
    from lumen_cli.retinex.classical import luma

    lin, g, want = out.clamp(0, 1) ** 2.2, 1.0, luma(ref).mean()
    for _ in range(rounds):  # clipping makes it non-linear: a few fixed-point rounds
        cur = luma((lin * g).clamp(0, 1) ** (1 / 2.2)).mean()
        g *= float(want / cur.clamp_min(1e-6))
    return (lin * g).clamp(0, 1) ** (1 / 2.2)


def tone_pair(pipe, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(SSIM of T(x) with the method's curves, SSIM of T(x) with oracle curves)."""
    from lumen_cli import metrics
    from lumen_cli.nets.tone import fit_curves
    from lumen_cli.pipelines.tone import curves_for, tone_noise, toned

    def score(curves):
        return float(metrics.ssim(toned(x, curves, noise=tone_noise(x, curves)), y))

    k = pipe.nets["tone"].knots
    s = FIT_STRIDE
    oracle = fit_curves(x[..., ::s, ::s], y[..., ::s, ::s], knots=k).float()
    return score(curves_for(pipe.nets, x)), score(oracle)


def measure(method: str, data: Path, steps: int | None, train_every: int) -> dict:
    from lumen_cli import metrics
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    pipe = E.load_pipeline(method, None, "cpu")
    if "tone" not in pipe.nets:
        raise SystemExit(f"{method}: its weights have no tone net; nothing to measure")
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(float(value))

    for lo, hi in paired_files(data / "val"):
        x, y = E.read_pixels(lo), E.read_pixels(hi)
        with torch.no_grad():
            out = enhance_image(pipe, x, EnhanceOptions(steps=steps)).float().clamp(0, 1)
            add("output", metrics.ssim(out, y))
            add("output_psnr", metrics.psnr(out, y))
            add("exposure_oracle", metrics.ssim(exposure_oracle(out, y), y))
            base, oracle = tone_pair(pipe, x, y)
            add("tone_base", base)
            add("tone_oracle", oracle)
            for k, v in metrics.ssim_components(out, y).items():
                add(k, v)
        print(f"  {method} {lo.name}: {rows['output'][-1]:.4f}", file=sys.stderr)
    if train_every:
        for lo, hi in paired_files(data / "train")[::train_every]:
            x, y = E.read_pixels(lo), E.read_pixels(hi)
            with torch.no_grad():
                out = enhance_image(pipe, x, EnhanceOptions(steps=steps)).float().clamp(0, 1)
                base, oracle = tone_pair(pipe, x, y)
            add("train_output", metrics.ssim(out, y))
            add("train_tone_base", base)
            add("train_tone_oracle", oracle)
    return {k: sum(v) / len(v) for k, v in rows.items()} | {
        "n_val": len(rows["output"]),
        "n_train": len(rows.get("train_tone_base", [])),
    }


def markdown(results: dict[str, dict], args, command: str) -> str:
    from run import machine  # benchmarks/run.py, beside this script

    m = machine()
    lines = [
        "# What limits the learned methods on sice/val",
        "",
        "Written by `benchmarks/ceiling.py`; do not edit by hand: re-run the script.",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {m['cpu']}, torch {m['torch']}, CPU capability {m['isa']} (precision "
        f"`auto` = {m['auto_precision'].replace('torch.', '')})",
        f"- data: `{args.data}` (val; train every {args.train_every}th pair)"
        if args.train_every
        else f"- data: `{args.data}/val`",
        f"- command: `{command}`",
        "",
        "SSIM (the `lumen eval` protocol), means over the val pairs. The *oracle* columns peek "
        "at the reference and are not methods: they bound what a perfect part could add.",
        "",
        "| method | output | output, exposure oracle | tone base T(x) | T(x), oracle curves "
        "| luminance | contrast | structure | local std out / ref |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in results.items():
        lines.append(
            f"| {m} | {r['output']:.4f} ({r['output_psnr']:.2f} dB) | "
            f"{r['exposure_oracle']:.4f} | {r['tone_base']:.4f} | {r['tone_oracle']:.4f} | "
            f"{r['luminance']:.4f} | {r['contrast']:.4f} | {r['structure']:.4f} | "
            f"{r['std_pred']:.1f} / {r['std_gt']:.1f} |"
        )
    lines.append("")
    for name, r in results.items():
        worst = min(("luminance", "contrast", "structure"), key=lambda k: r[k])
        curves = r["tone_oracle"] - r["tone_base"]
        exposure = r["exposure_oracle"] - r["output"]
        lines.append(
            f"- {name}: perfect curves would lift T(x) by {curves:+.4f} and a perfect exposure "
            f"guess the output by {exposure:+.4f}; the nets on top of T(x) add "
            f"{r['output'] - r['tone_base']:+.4f}; of SSIM's factors, {worst} is furthest from 1."
        )
    if any(r["n_train"] for r in results.values()):
        lines += [
            "",
            "On training pairs (the nets' own data): the whole method, and its tone base T(x) "
            "with its own and with oracle curves:",
            "",
            "| method | pairs | output | tone base T(x) | T(x), oracle curves |",
            "|---|---:|---:|---:|---:|",
        ]
        for m, r in results.items():
            if r["n_train"]:
                lines.append(
                    f"| {m} | {r['n_train']} | {r['train_output']:.4f} | "
                    f"{r['train_tone_base']:.4f} | {r['train_tone_oracle']:.4f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="kind,diff-retinex")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="holds val/ (and train/)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion)")
    ap.add_argument("--train-every", type=int, default=0, help="also every N-th train pair")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "CEILING.md")
    args = ap.parse_args(argv)
    command = "python benchmarks/ceiling.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    results = {
        m: measure(m, args.data, args.steps, args.train_every) for m in args.methods.split(",")
    }
    text = markdown(results, args, command.strip())
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
