"""Benchmark every lumen method (plus "identity", the unprocessed input) in one run.

    python benchmarks/run.py                                   # all methods, default steps
    python benchmarks/run.py --methods retinex,kind --steps-sweep diff-retinex=5,10,20,50

For each method (and each step count of a sweep), in a fresh subprocess so that peak memory is
the method's own: PSNR/SSIM on the val pairs (the ``lumen eval`` protocol, through the same
``lumen_cli.api.enhance_tensor`` as ``lumen enhance``), median seconds per 512x512 image (the
val images), seconds for one generated 12-megapixel image (4000x3000), peak RSS, parameter
count; on the ``--lol`` photos, no-reference noise and shadow-colour figures, and for
``--exposures`` the brightness, clipping and hue drift that ``--exposure`` gives.
Rewrites BENCHMARKS.md (date, CPU, cores, torch version, load, the exact command) and writes a
contact sheet (input | each method | reference) for three val images to
bench_out/contact_sheet.png, and (input | each method) for four real noisy night photos of
``--lol`` (LOL eval15, no references) to bench_out/lol_sheet.png (both git-ignored: they show
dataset images; re-create them with the script).
Methods whose weights are not available are reported as "weights missing", never run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAL = ROOT.parent / "shared" / "data" / "sice" / "val"
DEFAULT_LOL = ROOT.parent / "shared" / "data" / "lol" / "eval15" / "low"
CELL = 256
SHEET_IMAGES = 3
LOL_IMAGES = 4


# -- worker (one method, one step count, in its own process) ------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _identity_class():
    from lumen_cli.pipelines.base import Pipeline

    class IdentityPipeline(Pipeline):
        """The unprocessed input (the floor every method must beat)."""

        method = "identity"

        def enhance(self, x, ctx, region, opts):
            return x

    return IdentityPipeline


def worker(args) -> dict:
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lumen_cli.api import enhance_tensor
    from lumen_cli.errors import LumenError
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    res: dict = {"method": args.worker, "steps": args.steps}
    try:
        if args.worker == "identity":
            pipe = _identity_class()({})
        else:
            pipe = E.load_pipeline(args.worker, args.weights_file, "cpu")
    except (LumenError, FileNotFoundError) as e:
        res["status"] = "weights missing"
        res["note"] = str(e).splitlines()[0][:200]
        return res
    res["params"] = pipe.num_params()
    pairs = paired_files(Path(args.val))[: args.limit]
    sheet_idx = _sheet_indices(len(pairs))
    cells = {}

    def keep(rec, i, n):
        print(f"  {args.worker}: [{i}/{n}] {rec.psnr:.2f} dB {rec.seconds:.2f}s", file=sys.stderr)

    recs = E.evaluate_method(pipe, pairs, steps=args.steps, precision=args.precision, on_image=keep)
    for i in sheet_idx:  # outputs for the contact sheet (small, from the same code path)
        x = E.read_pixels(pairs[i][0])
        with torch.no_grad():
            y = enhance_tensor(pipe, x, steps=args.steps, precision=args.precision)
        cells[pairs[i][0].name] = _cell(y)
    defaults: dict = {}  # the default renderings of the --lol photos, reused below
    res.update(lol_figures(pipe, args, cells, defaults))
    if args.worker_exposures and args.worker != "identity":
        res["exposure"] = exposure_figures(pipe, args, defaults)
    np.savez_compressed(args.cells, **cells)
    s = E.summarize(recs)
    res.update(
        status="ok",
        n=s["n"],
        psnr=s["psnr_mean"],
        ssim=s["ssim_mean"],
        psnr_median=s["psnr_median"],
        s_512=statistics.median(r.seconds for r in recs),
        rss_512_mb=_rss_mb(),
    )
    if args.mp12:
        g = torch.Generator().manual_seed(0)
        # a smooth, dim 4000x3000 picture with fine noise (upsampled random field)
        base = torch.rand(1, 3, 60, 80, generator=g) * 0.25
        x = torch.nn.functional.interpolate(base, size=(3000, 4000), mode="bicubic")
        x = (x + 0.01 * torch.randn(x.shape, generator=g)).clamp(0, 1)
        t0 = time.perf_counter()
        with torch.no_grad():
            enhance_tensor(pipe, x, steps=args.steps, precision=args.precision)
        res["s_12mp"] = time.perf_counter() - t0
    res["rss_mb"] = _rss_mb()
    return res


def lol_figures(pipe, args, cells: dict, outputs: dict | None = None, extra=None) -> dict:
    """No-reference figures on every ``--lol`` photo (``lumen_cli.noref``), medians over the
    photos: luma and chroma noise σ (8-bit units), luma noise relative to the mean luma (%),
    shadow colour shift, mean luma (8-bit). Keeps the sheet photos' outputs in ``cells`` and,
    if given, every output in ``outputs`` (by file name). ``extra``: the pipeline's options."""

    import torch

    from lumen_cli import noref
    from lumen_cli.api import enhance_tensor
    from lumen_cli.ops.color import rgb_to_ycbcr
    from lumen_cli.train import evaluate as E

    sheet = {p.name for p in _lol_images(args.lol)}
    rows = []
    for p in _lol_images(args.lol, every=True):
        x = E.read_pixels(p)
        with torch.no_grad():
            y = enhance_tensor(pipe, x, steps=args.steps, precision=args.precision, extra=extra)
        if p.name in sheet:
            cells["lol:" + p.name] = _cell(y)
        if outputs is not None:
            outputs[p.name] = y
        sig = noref.noise_sigma(y)[0]
        luma = float(rgb_to_ycbcr(y)[:, 0].mean()) * 255
        shift = float(noref.shadow_shift(y, x)[0])
        rows.append((float(sig[0]), float(sig[1:].mean()), 100 * float(sig[0]) / luma, shift, luma))
    if not rows:
        return {}
    keys = ("lol_noise_y", "lol_noise_c", "lol_noise_rel", "lol_shadow", "lol_luma")
    out = {k: statistics.median(r[i] for r in rows) for i, k in enumerate(keys)}
    return out | {"lol_n": len(rows)}


def exposure_figures(pipe, args, defaults: dict) -> list[dict]:
    """``--exposure`` control on every ``--lol`` photo, for each factor of ``args.exposures``:
    medians over the photos of the output's mean luma (8-bit), the share of clipped pixels
    (any channel at 255, %) and the hue drift from the default rendering (exposure 1,
    ``noref.hue_drift``, percentage points of rg chromaticity). ``defaults``: the photos'
    default renderings by file name (``lol_figures``), computed again where missing."""
    import torch

    from lumen_cli import noref
    from lumen_cli.api import enhance_tensor
    from lumen_cli.ops.color import rgb_to_ycbcr
    from lumen_cli.train import evaluate as E

    factors = [float(v) for v in args.worker_exposures.split(",")]
    rows: dict[float, list[tuple[float, float, float]]] = {f: [] for f in factors}
    for p in _lol_images(args.lol, every=True):
        x = E.read_pixels(p)
        outs = {1.0: defaults[p.name].float()} if p.name in defaults else {}
        with torch.no_grad():
            for f in sorted({1.0, *factors} - set(outs)):
                outs[f] = enhance_tensor(
                    pipe, x, steps=args.steps, exposure=f, precision=args.precision
                ).float()
        for f in factors:
            y = outs[f]
            luma = float(rgb_to_ycbcr(y)[:, 0].mean()) * 255
            clip = 100 * float((torch.round(y * 255) >= 255).any(1).double().mean())
            drift = float(noref.hue_drift(y, outs[1.0])[0])
            rows[f].append((luma, clip, drift))
    return [
        {
            "exposure": f,
            "luma": statistics.median(r[0] for r in rows[f]),
            "clipped": statistics.median(r[1] for r in rows[f]),
            "drift": statistics.median(r[2] for r in rows[f] if r[2] == r[2]),
        }
        for f in factors
        if rows[f]
    ]


def _lol_images(folder: Path | None, every: bool = False) -> list[Path]:
    """The photos of ``folder``: all with ``every``, else LOL_IMAGES evenly spread (sheet)."""
    from lumen_cli.train.data import list_images

    if folder is None or not Path(folder).is_dir():
        return []
    files = list_images(Path(folder))
    if every or len(files) <= LOL_IMAGES:
        return files
    return [files[round(i * (len(files) - 1) / (LOL_IMAGES - 1))] for i in range(LOL_IMAGES)]


def _sheet_indices(n: int) -> list[int]:
    return sorted({0, n // 2, n - 1})[:SHEET_IMAGES] if n else []


def _cell(img):
    """(1,3,H,W) float -> (CELL, CELL*W/H, 3) uint8."""
    import torch

    h, w = img.shape[-2:]
    size = (CELL, max(1, round(CELL * w / h)))
    t = torch.nn.functional.interpolate(img.float(), size=size, mode="area").clamp(0, 1)
    return (t[0].permute(1, 2, 0) * 255).round().byte().numpy()


# -- driver ------------------------------------------------------------------------------
def _is_default_steps(method: str, steps: int | None) -> bool:
    from lumen_cli.pipelines.registry import METHODS

    info = METHODS.get(method)
    return steps is None or info is None or steps == info.default_steps


def run_one(method: str, steps: int | None, args, tmp: Path) -> dict:
    out = tmp / f"{method}-{steps}.json"
    cells = tmp / f"{method}-{steps}.npz"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--val",
        str(args.val),
        "--result",
        str(out),
        "--cells",
        str(cells),
        "--precision",
        args.precision,
    ]
    if steps:
        cmd += ["--steps", str(steps)]
    if method in args.weights_map:
        cmd += ["--weights-file", args.weights_map[method]]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if args.lol:
        cmd += ["--lol", str(args.lol)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if not args.no_12mp and _is_default_steps(method, steps):
        cmd += ["--mp12"]  # the 12-MP timing once per method, at its default step count
    if args.exposures and args.lol and _is_default_steps(method, steps):
        cmd += ["--worker-exposures", args.exposures]
    label = method + (f" ({steps} steps)" if steps else "")
    print(f"benchmark: {label}", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        p = subprocess.run(cmd, env=env, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"method": method, "steps": steps, "status": f"timeout after {args.timeout}s"}
    if p.returncode != 0 or not out.exists():
        return {"method": method, "steps": steps, "status": f"failed (exit {p.returncode})"}
    res = json.loads(out.read_text())
    res["label"] = label
    if cells.exists():
        res["cells"] = str(cells)
    return res


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from lumen_cli import devices

    return {
        "cpu": cpu,
        "isa": torch.backends.cpu.get_cpu_capability(),  # e.g. AVX2, AVX512, AVX512_BF16
        "auto_precision": str(devices.resolve_precision("auto", torch.device("cpu"))),
        "cores": cores,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load": os.getloadavg()[0],
        "python": platform.python_version(),
    }


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def write_markdown(path: Path, results: list[dict], m: dict, command: str, args, sheet) -> None:
    lines = [
        "# lumen benchmarks",
        "",
        "Written by `benchmarks/run.py`; do not edit by hand — re-run the script.",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {m['cpu']}, {m['cores']} cores available, torch's CPU capability "
        f"{m['isa']} (precision `auto` = {m['auto_precision'].replace('torch.', '')}: bf16 "
        "autocast needs AVX512-BF16 or AMX; compare timings only between runs on the same "
        "capability), torch "
        f"{m['torch']} ({m['threads']} threads), Python {m['python']}; 1-min load average at "
        f"start {m['load']:.2f} (the machine is shared: timings are noisy)",
        f"- data: `{args.val}` ({next((r['n'] for r in results if 'n' in r), '?')} pairs)",
        f"- command: `{command}`",
        "",
        "Protocol (as `lumen eval`): each low image is enhanced by the code of `lumen enhance` "
        "(seed 0, precision "
        f"`{args.precision}`), PSNR on 8-bit RGB, SSIM with an 11x11 Gaussian window "
        "(sigma 1.5) per RGB channel then averaged; means over the images. s/512² is the median "
        "enhancement time of the 512x512 val images; s/12 MP the time of one generated "
        "4000x3000 image. Peak RSS is the method's own process (subprocess per method), "
        "including the 12-MP run.",
        "",
        "| method | params | PSNR (dB) | SSIM | s / 512² | s / 12 MP | peak RSS (MB) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        label = r.get("label") or r["method"]
        if r.get("status") != "ok":
            note = r.get("status", "") + (f": {r['note']}" if r.get("note") else "")
            lines.append(f"| {label} | {_f(r.get('params'), ',')} | - | - | - | - | - | {note} |")
            continue
        given = getattr(args, "weights_map", {}).get(r["method"])
        note = f" weights given by --weights: `{given}`" if given else ""
        lines.append(
            f"| {label} | {r['params']:,} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['s_512']:.3f} | {_f(r.get('s_12mp'), '.2f')} | {r['rss_mb']:.0f} |{note} |"
        )
    lines += ["", "LPIPS: not measured (its network weights are not available here)."]
    lines += _lol_markdown(results, args)
    lines += _exposure_markdown(results, args)
    lines += _process_markdown(results)
    if sheet:
        lines += [
            "",
            f"Contact sheet (input | each method | reference), re-created by the "
            f"script, not committed (it shows dataset images): `{sheet}`",
        ]
    text = "\n".join(lines) + "\n"
    from sections import marked_sections

    old = path.read_text() if path.exists() else ""
    for section in marked_sections(old):  # written by other scripts (ablation, exposure)
        text += "\n" + section + "\n"
    path.write_text(text)


def _process_markdown(results: list[dict]) -> list[str]:
    rows = [r["process"] for r in results if r.get("process")]
    if not rows:
        return []
    from process import markdown

    return [
        "",
        "## Whole process (`lumen enhance` as a user times it)",
        "",
        "`benchmarks/process.py`: a fresh `lumen enhance` process per run (Python start, "
        "imports, weights, reading, enhancing, writing), default steps; s / 512² is the median "
        "of 3 runs after a warm-up, peak RSS as GNU `time` reports "
        "it (`%M`); 12 MP and 24 MP are one run of a generated dim photo with the "
        "default tiling; the batch column is 50 512² images in one process.",
        "",
        *markdown(rows),
    ]


def _lol_markdown(results: list[dict], args) -> list[str]:
    ok = [r for r in results if r.get("status") == "ok" and "lol_n" in r]
    if not ok:
        return []
    lines = [
        "",
        f"## Real night photos without references: `{args.lol}` ({ok[0]['lol_n']} photos)",
        "",
        "No-reference figures (`lumen_cli.noref`), medians over the photos, same outputs as "
        "`lumen enhance`. Noise: Immerkær's estimate on the flatter half of each output, in "
        "8-bit units, for luma and for chroma (mean of Cb, Cr); relative: luma noise over mean "
        "luma (the input's own row is the ratio a plain gain would keep; lower is cleaner). "
        "Shadow shift: mean CbCr distance between the output and the input brightened by one "
        "neutral gain, over the input's darkest pixels (max-RGB < 0.04), both blurred 4 px: "
        "0 = shadows keep the camera's colour. Lower is better in every column but brightness.",
        "",
        "| method | luma noise | chroma noise | noise / luma (%) | shadow shift | mean luma |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in ok:
        lines.append(
            f"| {r.get('label') or r['method']} | {r['lol_noise_y']:.2f} | {r['lol_noise_c']:.2f} "
            f"| {r['lol_noise_rel']:.2f} | {r['lol_shadow']:.2f} | {r['lol_luma']:.1f} |"
        )
    return lines


def _exposure_markdown(results: list[dict], args) -> list[str]:
    ok = [r for r in results if r.get("status") == "ok" and r.get("exposure")]
    if not ok:
        return []
    factors = [e["exposure"] for e in ok[0]["exposure"]]
    lines = [
        "",
        "### `--exposure` on the same photos (default step counts; factor 1 = the default "
        "rendering above)",
        "",
        "Medians over the photos of: mean luma (8-bit) / clipped pixels (any channel at 255, "
        "%) / hue drift from the factor-1 output (`noref.hue_drift`: rg-chromaticity distance "
        "over pixels well exposed in both, percentage points; a neutral change of exposure "
        "scores about 0).",
        "",
        "| method | " + " | ".join(f"x{f:g}" for f in factors) + " |",
        "|---|" + "---:|" * len(factors),
    ]
    for r in ok:
        cells = [f"{e['luma']:.0f} / {e['clipped']:.1f} / {e['drift']:.2f}" for e in r["exposure"]]
        lines.append(f"| {r.get('label') or r['method']} | " + " | ".join(cells) + " |")
    return lines


def contact_sheet(results: list[dict], args, dest: Path, lol: bool = False) -> Path | None:
    """Input | each method | reference for three val pairs; with ``lol``, input | each method
    for the ``--lol`` photos (they have no reference)."""
    import numpy as np

    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    # identity shows the input again: left out of the sheet
    ok = [
        r for r in results if r.get("status") == "ok" and "cells" in r and r["method"] != "identity"
    ]
    if lol:
        items = [(p, None, "lol:" + p.name) for p in _lol_images(args.lol)]
    else:
        pairs = paired_files(Path(args.val))[: args.limit]
        items = [(pairs[i][0], pairs[i][1], pairs[i][0].name) for i in _sheet_indices(len(pairs))]
    if not ok or not items:
        return None
    rows = []
    for lo, hi, key in items:
        cols = [("input", _cell(E.read_pixels(lo)))]
        cols += [(r["label"], np.load(r["cells"])[key]) for r in ok]
        if hi is not None:
            cols.append(("reference", _cell(E.read_pixels(hi))))
        rows.append(cols)
    return _save_sheet(rows, dest)


def _save_sheet(rows, dest: Path) -> Path:
    from PIL import Image, ImageDraw

    w = max(c[1].shape[1] for row in rows for c in row)
    head = 18
    sheet = Image.new("RGB", (w * len(rows[0]), (CELL + head) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, row in enumerate(rows):
        for x, (label, arr) in enumerate(row):
            sheet.paste(Image.fromarray(arr), (x * w, y * (CELL + head) + head))
            draw.text((x * w + 4, y * (CELL + head) + 3), label, fill="black")
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=None, help="comma list (default: identity + all)")
    ap.add_argument(
        "--steps-sweep", action="append", default=[], help="e.g. diff-retinex=5,10,20,50 (repeat)"
    )
    ap.add_argument("--val", type=Path, default=DEFAULT_VAL)
    ap.add_argument(
        "--lol",
        type=Path,
        default=DEFAULT_LOL if DEFAULT_LOL.is_dir() else None,
        help="folder of real dim photos for bench_out/lol_sheet.png (default: LOL eval15)",
    )
    ap.add_argument(
        "--exposures",
        default="0.5,0.71,1.41,2",
        help="--exposure factors measured on the --lol photos ('' to skip)",
    )
    ap.add_argument("--limit", type=int, default=None, help="only the first K val pairs")
    ap.add_argument("--no-12mp", action="store_true", help="skip the 12-megapixel timing")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per method run")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--sheet", type=Path, default=ROOT / "bench_out" / "contact_sheet.png")
    # worker mode (internal)
    ap.add_argument(
        "--weights",
        action="append",
        default=[],
        help="METHOD=FILE.safetensors: score this file (e.g. converted official weights) "
        "instead of the method's shipped weights (repeat)",
    )
    ap.add_argument(
        "--process",
        action="store_true",
        help="also time the whole lumen enhance process (benchmarks/process.py)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--weights-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cells", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mp12", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-exposures", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.result.write_text(json.dumps(worker(args)))
        return

    sys.path.insert(0, str(ROOT))
    from lumen_cli.pipelines.registry import METHODS

    methods = args.methods.split(",") if args.methods else ["identity", *METHODS]
    args.weights_map = dict(item.split("=", 1) for item in args.weights)
    sweep = {}
    for item in args.steps_sweep:
        name, values = item.split("=")
        sweep[name.strip()] = [int(v) for v in values.split(",")]
    command = " ".join(["python benchmarks/run.py", shlex.join(sys.argv[1:])]).strip()
    m = machine()
    if args.threads:  # each method's worker process runs with these
        m["threads"] = args.threads
    results = []
    with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
        for meth in methods:
            for steps in sweep.get(meth, [None]):
                results.append(run_one(meth, steps, args, Path(tmp)))
                if args.process and meth != "identity" and _is_default_steps(meth, steps):
                    from process import measure_method

                    print(f"benchmark: {meth} whole process", file=sys.stderr)
                    pair = next(iter(sorted(Path(args.val, "low").glob("*"))), None)
                    results[-1]["process"] = measure_method(
                        meth, Path(tmp), source=pair, weights=args.weights_map.get(meth)
                    )
        sheet = contact_sheet(results, args, args.sheet)
        contact_sheet(results, args, args.sheet.with_name("lol_sheet.png"), lol=True)
        for r in results:
            r.pop("cells", None)
    rel = sheet.relative_to(ROOT) if sheet and sheet.is_relative_to(ROOT) else sheet
    write_markdown(args.out, results, m, command, args, rel)
    (ROOT / "bench_out").mkdir(exist_ok=True)
    (ROOT / "bench_out" / "results.json").write_text(
        json.dumps({"machine": m, "results": results}, indent=2)
    )
    print(f"wrote {args.out}" + (f" and {sheet}" if sheet else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
