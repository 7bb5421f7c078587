"""Whole-process timing: what a user measures with ``time lumen enhance ...``.

Each figure is the wall-clock time of a fresh ``lumen enhance`` process (Python start, imports,
weights, reading, enhancing, writing) and its peak resident memory as GNU ``time`` reports it
(``%M``, "Maximum resident set size").

    python benchmarks/process.py --methods retinex,kind            # prints a markdown table

``benchmarks/run.py`` imports ``measure_method`` to put these figures beside its in-process
ones. Inputs are made here: a 512x512 crop of a val image when one is given, else a dim
synthetic picture; 12 MP (4000x3000) and 24 MP (6000x4000) dim synthetic pictures with fine
noise; a batch of 50 512x512 images (one process: images per minute).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"512": (512, 512), "12mp": (3000, 4000), "24mp": (4000, 6000)}


TIME = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)


def timed_run(cmd: list[str], env: dict | None = None, timeout: float = 1800) -> dict:
    """Run ``cmd``; return wall seconds, its peak RSS (MB) and its exit code.

    The peak RSS comes from GNU time (``%M``) where installed: a forked child's high-water mark
    starts at its parent's size on Linux, so measuring from this (larger) Python process would
    overstate small runs; without it, the kernel's rusage of the child is used."""
    full = [TIME, "-f", "LUMEN_MAXRSS_KB %M", *cmd] if TIME else cmd
    t0 = time.perf_counter()
    p = subprocess.Popen(full, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    wall = time.perf_counter() - t0
    text = err.decode(errors="replace")
    rss = None
    for line in text.splitlines():
        if line.startswith("LUMEN_MAXRSS_KB "):
            rss = int(line.split()[1]) / 1024.0
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"s": wall, "rss_mb": rss, "rc": p.returncode, "stderr": text[-500:]}


def child_env() -> dict:
    """The environment of a measured process: this one's, with the repository on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def make_image(path: Path, hw: tuple[int, int], source: Path | None = None, seed: int = 0) -> Path:
    """A dim test picture of size ``hw`` at ``path`` (PNG): the centre of ``source`` when it is
    large enough, else a smooth dim random field with fine noise."""
    import numpy as np
    from PIL import Image

    h, w = hw
    if source is not None:
        with Image.open(source) as im:
            im = im.convert("RGB")
            if im.height >= h and im.width >= w:
                x0, y0 = (im.width - w) // 2, (im.height - h) // 2
                im.crop((x0, y0, x0 + w, y0 + h)).save(path)
                return path
    rng = np.random.default_rng(seed)
    base = Image.fromarray((rng.random((30, 40, 3)) * 64).astype(np.uint8)).resize(
        (w, h), Image.BICUBIC
    )
    arr = np.asarray(base, dtype=np.float32) + rng.normal(0, 2.5, (h, w, 3))
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path)
    return path


def lumen_cmd(method: str, inputs: list[Path], out: Path, steps: int | None, extra=()) -> list:
    cmd = [sys.executable, "-m", "lumen_cli", "enhance", *map(str, inputs), "-o", str(out)]
    cmd += ["--method", method, "--quiet", "--overwrite", *extra]
    if steps:
        cmd += ["--steps", str(steps)]
    return cmd


def measure_method(
    method: str,
    work: Path,
    steps: int | None = None,
    source: Path | None = None,
    runs: int = 3,
    big: tuple[str, ...] = ("12mp", "24mp"),
    batch: int = 50,
    threads: tuple[int, ...] = (),
    weights: str | None = None,
    big_runs: int = 1,
) -> dict:
    """Whole-process figures of one method: median of ``runs`` after a warm-up at 512x512,
    the median of ``big_runs`` runs at each of the ``big`` sizes (peak RSS: their largest), a
    batch of ``batch`` 512x512 images in one process (images per minute), and 512x512 medians
    at each thread count of ``threads``."""
    env = child_env()
    img = work / "in512.png"
    if not img.exists():
        make_image(img, SIZES["512"], source)
    res: dict = {"method": method, "steps": steps}
    extra = ("--weights", weights) if weights else ()
    cmd = lumen_cmd(method, [img], work / f"out-{method}.png", steps, extra)
    first = timed_run(cmd, env)
    if first["rc"] != 0:
        return res | {"status": f"failed (exit {first['rc']})", "note": first["stderr"][-200:]}
    times = [timed_run(cmd, env) for _ in range(runs)]  # runs 0: only the big sizes
    res["s_512"] = statistics.median(t["s"] for t in times) if times else None
    res["rss_512_mb"] = max(t["rss_mb"] for t in times) if times else None
    for n in threads:
        t_env = {**env, "LUMEN_THREADS": str(n), "OMP_NUM_THREADS": str(n)}
        res[f"s_512_t{n}"] = statistics.median(timed_run(cmd, t_env)["s"] for _ in range(runs))
    for size in big:
        src = work / f"in{size}.png"
        if not src.exists():
            make_image(src, SIZES[size])
        out = work / f"out-{method}-{size}.png"
        rs = [timed_run(lumen_cmd(method, [src], out, steps, extra), env) for _ in range(big_runs)]
        ok = all(r["rc"] == 0 for r in rs)
        res[f"s_{size}"] = statistics.median(r["s"] for r in rs) if ok else None
        res[f"rss_{size}_mb"] = max(r["rss_mb"] for r in rs)
    if batch:
        folder = work / "batch"
        if not folder.is_dir():
            folder.mkdir()
            for i in range(batch):
                shutil.copyfile(img, folder / f"{i:03d}.png")
        outdir = work / f"batch-out-{method}"
        r = timed_run(lumen_cmd(method, [folder], outdir, steps, extra), env)
        res["batch_per_min"] = 60.0 * batch / r["s"] if r["rc"] == 0 else None
        shutil.rmtree(outdir, ignore_errors=True)
    return res | {"status": "ok"}


def host_floor(runs: int = 3) -> dict[str, float]:
    """Whole-process seconds (median of ``runs`` after a warm-up) of ``python -c "import
    torch"`` and ``lumen --version``: the host's floor under every ``lumen enhance`` row (torch's
    import alone varies between machines of one kind), so tables of other days compare."""
    env = child_env()
    cmds = {
        "import torch": [sys.executable, "-c", "import torch"],
        "lumen --version": [sys.executable, "-m", "lumen_cli", "--version"],
    }
    out = {}
    for name, cmd in cmds.items():
        timed_run(cmd, env)
        out[name] = statistics.median(timed_run(cmd, env)["s"] for _ in range(max(runs, 1)))
    return out


def markdown(results: list[dict], threads: tuple[int, ...] = ()) -> list[str]:
    """The table of ``measure_method`` results."""

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = "| method | s / 512² | RSS 512² (MB) | s / 12 MP | s / 24 MP | RSS 24 MP (MB) | 512² / min in a batch |"  # noqa: E501
    head += "".join(f" s / 512², {n} thread{'s' * (n > 1)} |" for n in threads)
    lines = [head, "|---" + "|---:" * (6 + len(threads)) + "|"]
    for r in results:
        label = r["method"] + (f" ({r['steps']} steps)" if r.get("steps") else "")
        if r.get("status") != "ok":
            lines.append(f"| {label} |" + " - |" * (6 + len(threads)) + f" {r.get('status')}")
            continue
        lines.append(
            f"| {label} | {f(r['s_512'], '.2f')} | {f(r['rss_512_mb'], '.0f')} | "
            f"{f(r.get('s_12mp'), '.1f')} "
            f"| {f(r.get('s_24mp'), '.1f')} | {f(r.get('rss_24mp_mb'), '.0f')} | "
            f"{f(r.get('batch_per_min'), '.1f')} |"
            + "".join(f" {f(r.get(f's_512_t{n}'), '.2f')} |" for n in threads)
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="retinex")
    ap.add_argument("--source", type=Path, default=None, help="image to crop the 512² input from")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--big", default="12mp,24mp", help="sizes beyond 512²: 12mp, 24mp")
    ap.add_argument("--big-methods", default=None, help="only these methods get --big sizes")
    ap.add_argument("--big-runs", type=int, default=1, help="runs per --big size (median)")
    ap.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md: write a section")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", default="", help="e.g. 1,2: 512² medians per thread count")
    ap.add_argument("--section", default="process", help="name of the section --out writes")
    args = ap.parse_args()
    threads = tuple(int(t) for t in args.threads.split(",") if t)
    floor = host_floor(args.runs)
    with tempfile.TemporaryDirectory(prefix="lumen-proc-") as tmp:
        results = [
            measure_method(
                m,
                Path(tmp),
                source=args.source,
                runs=args.runs,
                big=()
                if args.no_big or (args.big_methods and m not in args.big_methods.split(","))
                else tuple(b for b in args.big.split(",") if b),
                batch=args.batch,
                threads=threads,
                big_runs=max(1, args.big_runs),
            )
            for m in args.methods.split(",")
        ]
    table = markdown(results, threads)
    floor_text = ", ".join(f"`{k}` {v:.2f} s" for k, v in floor.items())
    print("\n".join(table))
    print(f"host floor: {floor_text}")
    if args.out:
        import datetime as dt
        import shlex

        from sections import replace_section

        load = os.getloadavg()[0]
        env_prefix = (
            f"LUMEN_THREADS={os.environ['LUMEN_THREADS']} "
            if os.environ.get("LUMEN_THREADS")
            else ""
        )  # noqa: E501
        command = (
            env_prefix
            + " ".join(["python benchmarks/process.py", shlex.join(sys.argv[1:])]).strip()
        )  # noqa: E501
        lines = [
            "## Whole process: `lumen enhance` as a user times it"
            + ("" if args.section == "process" else f" ({args.section})"),
            "",
            f"Written by `{command}` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"1-min load average {load:.2f} at the end). A fresh `lumen enhance` process per "
            "run (Python start, imports, weights, reading, enhancing, writing), default steps, "
            + (
                f"$LUMEN_THREADS={os.environ['LUMEN_THREADS']}"
                if os.environ.get("LUMEN_THREADS")
                else "default threads"
            )
            + "; s / 512² is the median of the runs after a warm-up, peak RSS as GNU "
            "`time` reports it (`%M`); 12 MP / 24 MP: "
            + ("one run" if args.big_runs <= 1 else f"the median of {args.big_runs} runs")
            + " on a generated dim photo with the default tiling (two tiles at once where "
            "the method allows it); the batch column: "
            f"{args.batch} 512² images in one process. '-': not measured. This host's floor "
            f"(whole processes, medians): {floor_text}; torch's import differs between "
            "machines of one kind, so compare other days' tables after subtracting it.",
            "",
            *table,
        ]
        text = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(text, f"<!-- {args.section} -->", lines))


if __name__ == "__main__":
    main()
