"""refusion (issue 26): what the tone prior and the SDE nets each add, and the sampler sweep.

    python benchmarks/refusion_sweep.py --input-weights OLD.safetensors --out BENCHMARKS.md
    python benchmarks/refusion_sweep.py --limit 3 --samplers posterior --steps 5,20   # quick

On the val pairs (the ``lumen eval`` protocol: ``lumen_cli.train.evaluate.score``, seed 0,
precision auto, default tiling), with the refusion weights given (default: the manifest's):

- the input itself (no enhancement);
- T(x) alone: the tone prior's image the lite SDE's mean is encoded from (``extra["stop"] =
  "mean"``), no auto-encoder, no SDE;
- latent files only: T(x) through the auto-encoder without sampling (``"autoencoder"``:
  decode the mean's own latent), and the latent path's ceiling: the reference's own latent
  decoded with the mean image's skips;
- the full pipeline at every ``--samplers`` x ``--steps`` (the lite file's default sampler
  and steps is the headline);
- ``--input-weights``: a mu = x file (preset ``lite-input`` or ``lite-pixel-input``) at its
  default, for the ablation; ``--compare LABEL=FILE`` (repeatable): more refusion files at
  their defaults (e.g. the previous shipped one).

Then the no-reference figures of ``benchmarks/run.py`` (``lol_figures``) on the ``--lol``
night photos for ``retinex``, T(x) alone and every file at its default, and the whole-process
time and peak RSS of ``lumen enhance`` at 512² (``benchmarks/process.py``'s
``measure_method``). Seconds in the sweep: enhancement alone per image, median, in this process
with ``--threads`` threads. ``--out`` rewrites the section between ``<!-- refusion -->``
markers of BENCHMARKS.md (``benchmarks/run.py`` keeps it); ``--json`` saves every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAL = ROOT.parent / "shared" / "data" / "sice" / "val"
DEFAULT_LOL = ROOT.parent / "shared" / "data" / "lol" / "eval15" / "low"
MARK = "<!-- refusion -->"


def val_row(pipe, pairs, label: str, steps=None, extra=None) -> dict:
    """Mean / median PSNR and SSIM and the median seconds of ``pipe`` (None: the input) over
    ``pairs``, with ``steps`` and ``extra`` as ``lumen enhance`` would pass them."""
    import torch

    from lumen_cli.api import enhance_tensor
    from lumen_cli.train import evaluate as E

    ps, ss, secs = [], [], []
    for lo, hi in pairs:
        x, y = E.read_pixels(lo), E.read_pixels(hi)
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = x if pipe is None else enhance_tensor(pipe, x, steps=steps, extra=extra)
        secs.append(time.perf_counter() - t0)
        p, s = E.score(pred.float().clamp(0, 1), y, lo.name)
        ps.append(p)
        ss.append(s)
    row = {"label": label, "n": len(ps), "psnr": statistics.mean(ps), "ssim": statistics.mean(ss)}
    row |= {"psnr_median": statistics.median(ps), "ssim_median": statistics.median(ss)}
    row["s"] = statistics.median(secs) if pipe is not None else None
    print(f"  {label}: {row['psnr']:.2f} dB / {row['ssim']:.4f}", file=sys.stderr, flush=True)
    return row


def oracle_row(pipe, pairs) -> dict:
    """The latent path's ceiling: decode(latent of the *reference*, skips of the mean image),
    what a perfect SDE would give (reference-aware: a diagnostic, not a rendering)."""
    import torch

    from lumen_cli.train import evaluate as E

    ae, ps, ss = pipe.ae, [], []
    for lo, hi in pairs:
        x, y = E.read_pixels(lo), E.read_pixels(hi)
        with torch.no_grad():
            ctx = pipe.analyze(x, _opts(pipe), torch.Generator().manual_seed(0))
            base = pipe._mean_fn(ctx)(x)
            _, hidden = ae.encode(base)
            out = ae.decode(ae.encode(y)[0], hidden, x.shape[-2:], base=base)
        p, s = E.score(out.float().clamp(0, 1), y, lo.name)
        ps.append(p)
        ss.append(s)
    row = {"label": "oracle: decode(latent of the reference, mean image's skips)", "n": len(ps)}
    row |= {"psnr": statistics.mean(ps), "ssim": statistics.mean(ss), "s": None}
    row |= {"psnr_median": statistics.median(ps), "ssim_median": statistics.median(ss)}
    print(f"  oracle: {row['psnr']:.2f} dB / {row['ssim']:.4f}", file=sys.stderr, flush=True)
    return row


def _opts(pipe):
    from lumen_cli.pipelines.base import EnhanceOptions

    return EnhanceOptions(steps=1, extra={"stop": "autoencoder"})


def lol_row(pipe, label: str, args, extra=None) -> dict:
    """``benchmarks/run.py``'s no-reference figures of one rendering on the --lol photos."""
    from run import lol_figures

    ns = argparse.Namespace(lol=args.lol, steps=None, precision="auto")
    return {"label": label, **lol_figures(pipe, ns, {}, extra=extra)}


def speed_rows(weights: list[tuple[str, str | None]], source: Path | None, runs: int) -> list:
    """Whole-process ``lumen enhance`` at 512² for each (label, weights file)."""
    from process import measure_method

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, w in weights:
            r = measure_method("refusion", Path(tmp), None, source, runs, (), 0, (), w)
            out.append({"label": label, **r})
            print(f"  speed {label}: {r.get('s_512')}", file=sys.stderr, flush=True)
    return out


def run(args) -> dict:
    import torch

    from lumen_cli.pipelines.load import load_pipeline
    from lumen_cli.train.data import paired_files

    torch.set_num_threads(args.threads)
    pairs = paired_files(args.val)[: args.limit]
    lite = load_pipeline("refusion", args.weights)
    old = load_pipeline("refusion", args.input_weights) if args.input_weights else None
    res: dict = {"val": [], "sweep": [], "lol": [], "speed": []}
    from lumen_cli.methods.refusion.pipeline import DEFAULT_SAMPLER

    default = (DEFAULT_SAMPLER, lite.default_steps)
    res["val"].append(val_row(None, pairs, "input (no enhancement)"))
    res["val"].append(val_row(lite, pairs, "T(x) alone", extra={"stop": "mean"}))
    if lite.latent:
        res["val"].append(
            val_row(lite, pairs, "T(x) -> auto-encoder, no SDE", extra={"stop": "autoencoder"})
        )
        res["val"].append(oracle_row(lite, pairs))
    for sampler in args.samplers.split(","):
        for n in map(int, args.steps.split(",")):
            row = val_row(lite, pairs, f"{sampler} {n}", n, {"sampler": sampler})
            res["sweep"].append(row | {"sampler": sampler, "steps": n})
            if (sampler, n) == default:
                label = f"mu = T(x): full pipeline ({sampler} {n}, the default)"
                res["val"].append(row | {"label": label})
    if old is not None:
        label = f"mu = x: full pipeline ({DEFAULT_SAMPLER} {old.default_steps}, its default)"
        res["val"].append(val_row(old, pairs, label))
    others = [(label, load_pipeline("refusion", w)) for label, w in compared(args)]
    for label, pipe in others:
        row = val_row(pipe, pairs, f"{label} ({DEFAULT_SAMPLER} {pipe.default_steps})")
        res["val"].append(row)
    if args.lol and args.lol.is_dir():
        res["lol"].append(lol_row(load_pipeline("retinex"), "retinex", args))
        res["lol"].append(lol_row(lite, "T(x) alone", args, {"stop": "mean"}))
        res["lol"].append(lol_row(lite, "refusion mu = T(x)", args))
        if old is not None:
            res["lol"].append(lol_row(old, "refusion mu = x", args))
        for label, pipe in others:
            res["lol"].append(lol_row(pipe, label, args))
    if args.speed_runs:
        files = [("mu = T(x)", args.weights), ("mu = x", args.input_weights), *compared(args)]
        src = paired_files(args.val)[0][0]
        res["speed"] = speed_rows([f for f in files if f[1] or f[0] == "mu = T(x)"], src,
                                  args.speed_runs)  # fmt: skip
    return res


def compared(args) -> list[tuple[str, str]]:
    """(label, file) of every ``--compare LABEL=FILE``."""
    return [tuple(c.split("=", 1)) for c in args.compare]


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def markdown(res: dict, command: str, args) -> list[str]:
    load = os.getloadavg()[0]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    n = res["val"][0]["n"]
    lines = [
        "## refusion: the tone prior, the SDE nets, samplers and steps",
        "",
        f"Written by `{command}` ({when}, 1-min load average {load:.2f} at the end; "
        f"{args.threads} thread(s) in process). `{args.val}`, {n} pairs, `lumen eval` protocol "
        "(seed 0, precision auto). The SDE's mean of the file measured here (mu = T(x)) is "
        "T(x), the tone prior's image (lumen addition), or in a latent file its latent; "
        "`T(x) alone` is that image with no SDE (`extra stop=mean`). Latent files add two "
        "rows: T(x)'s own latent decoded without sampling (`stop=autoencoder`), and the "
        "*reference's* latent decoded with T(x)'s skips (the oracle: the most a perfect SDE "
        "could give with that auto-encoder). The mu = x row is the file given by "
        "`--input-weights`; further rows are `--compare` files (see each file's manifest "
        "provenance or benchmarks/NOTES.md for its training).",
        "",
        "| rendering | PSNR | SSIM | PSNR median | SSIM median | s / image |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["val"]:
        lines.append(
            f"| {r['label']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_median']:.2f} "
            f"| {r['ssim_median']:.4f} | {_f(r['s'], '.2f')} |"
        )
    if res["sweep"]:
        samplers = list(dict.fromkeys(r["sampler"] for r in res["sweep"]))
        steps = list(dict.fromkeys(r["steps"] for r in res["sweep"]))
        cell = {(r["sampler"], r["steps"]): r for r in res["sweep"]}
        lines += [
            "",
            "Sampler x steps (mu = T(x) weights; PSNR / SSIM / seconds per image, enhancement "
            "alone):",
            "",
            "| sampler | " + " | ".join(f"{s} steps" for s in steps) + " |",
            "|---" + "|---:" * len(steps) + "|",
        ]
        for sm in samplers:
            cells = [cell.get((sm, s)) for s in steps]
            lines.append(
                f"| {sm} | "
                + " | ".join(
                    "-" if c is None else f"{c['psnr']:.2f} / {c['ssim']:.4f} / {c['s']:.2f} s"
                    for c in cells
                )
                + " |"
            )
    if res["lol"]:
        lines += [
            "",
            f"No-reference figures on `{args.lol}` ({res['lol'][0].get('lol_n', 0)} photos; "
            "`benchmarks/run.py`'s `lol_figures`, medians; lower is better but for mean luma):",
            "",
            "| rendering | luma noise | chroma noise | noise / luma (%) | shadow shift | mean luma |",  # noqa: E501
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in res["lol"]:
            lines.append(
                f"| {r['label']} | {r['lol_noise_y']:.2f} | {r['lol_noise_c']:.2f} "
                f"| {r['lol_noise_rel']:.2f} | {r['lol_shadow']:.2f} | {r['lol_luma']:.1f} |"
            )
    if res["speed"]:
        lines += [
            "",
            "Whole process (`benchmarks/process.py`'s `measure_method`: a fresh `lumen enhance` "
            "per run on a 512² crop of the first val image, default sampler and steps, default "
            f"threads; median of {args.speed_runs} runs after a warm-up; peak RSS by GNU time):",
            "",
            "| weights | s / 512² | RSS 512² (MB) |",
            "|---|---:|---:|",
        ]
        for r in res["speed"]:
            lines.append(
                f"| {r['label']} | {_f(r.get('s_512'), '.2f')} | {_f(r.get('rss_512_mb'), '.0f')} |"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="mu = T(x) file (default: the manifest's)")
    ap.add_argument("--input-weights", default=None, help="a mu = x (lite-input) file")
    ap.add_argument("--compare", action="append", default=[], help="LABEL=FILE (repeatable)")
    ap.add_argument("--val", type=Path, default=DEFAULT_VAL)
    ap.add_argument("--lol", type=Path, default=DEFAULT_LOL)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--samplers", default="sde,ode,posterior")
    ap.add_argument("--steps", default="5,10,20,50")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed-runs", type=int, default=3, help="0: no whole-process timing")
    ap.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md: write the section")
    ap.add_argument("--json", type=Path, default=None, help="save every figure here")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    command = "python benchmarks/refusion_sweep.py " + shlex.join(sys.argv[1:])
    res = run(args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    lines = markdown(res, command, args)
    print("\n".join(lines))
    if args.out:
        from sections import replace_section

        text = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(text, MARK, lines))


if __name__ == "__main__":
    main()
