"""Pieces shared by ``enhance`` and ``decompose``: device and pipeline set-up, reading one input,
and the per-file loop with its report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lumen_cli.cli import console
from lumen_cli.cli.plan import STDIO, Job, same_file
from lumen_cli.cli.report import Report
from lumen_cli.errors import LumenError, UsageError


def setup_pipeline(method: str, device: str, precision: str, weights: Path | None, threads: int):
    """Pick the device (and say which), configure the CPU, load the method with its weights."""
    from lumen_cli import devices
    from lumen_cli.pipelines.load import load_pipeline

    devices.configure_cpu(threads or None)
    dev = devices.pick_device(device)
    dtype = devices.resolve_precision(precision, dev)
    pipe = load_pipeline(method, weights, dev)
    if not pipe.reduced_precision:
        dtype = devices.torch.float32
    console.info(f"lumen: method {method} on {devices.describe(dev, dtype)}")
    return pipe


def read_input(job: Job, max_pixels: int):
    """(Picture, tensor (1,3,H,W) float32 view of its pixels)."""
    import torch

    from lumen_cli.io import read_image

    src = sys.stdin.buffer.read() if job.source == STDIO else job.source
    if job.source == STDIO and not src:
        raise UsageError("stdin is empty: pipe an image into 'lumen ... -'")
    pic = read_image(src, max_pixels=max_pixels)
    x = torch.from_numpy(pic.pixels).permute(2, 0, 1).unsqueeze(0)
    return pic, x


def check_dest(job: Job, dests: list[str], overwrite: bool, skip_existing: bool) -> str | None:
    """None if the job may write, else 'skip' or an error message."""
    for d in dests:
        if d == STDIO:
            continue
        if job.source != STDIO and same_file(job.source, d) and not overwrite:
            return f"output {d} is the input file itself; pass --overwrite to replace it"
        if Path(d).exists():
            if skip_existing:
                return "skip"
            if not overwrite:
                return f"output {d} exists; pass --overwrite or --skip-existing"
    return None


def run_jobs(
    jobs: list[Job],
    work,
    *,
    quiet: bool,
    json_lines: bool,
    dests_of,
    overwrite: bool,
    skip_existing: bool,
    info: dict,
) -> int:
    """Run ``work(job, progress) -> dict`` for every job; a failure is reported and the batch
    goes on. Returns the exit code."""
    report = Report(quiet=quiet, json_lines=json_lines)
    with console.Progress(len(jobs), quiet) as prog:
        for job in jobs:
            label = "<stdin>" if job.source == STDIO else job.source
            prog.start_file(Path(label).name)
            t0 = time.perf_counter()
            verdict = check_dest(job, dests_of(job), overwrite, skip_existing)
            try:
                if verdict == "skip":
                    report.record("skipped", label, job.dest, reason="output exists", **info)
                    prog.log(f"skipped {label}: {job.dest} exists")
                    continue
                if verdict is not None:
                    raise UsageError(verdict)
                extra = work(job, prog.inner)
                secs = round(time.perf_counter() - t0, 3)
                report.record("done", label, job.dest, seconds=secs, **info, **extra)
                if job.dest != STDIO:
                    prog.log(f"{label} -> {job.dest} ({secs:.2f} s)")
            except (LumenError, OSError) as e:
                msg = str(e)
                console.error(msg if msg.startswith(label) else f"{label}: {msg}")
                report.record("failed", label, job.dest, error=str(e), **info)
            finally:
                prog.file_done()
    if len(jobs) > 1 or report.failed or report.skipped:
        console.info(report.summary())
    return report.exit_code
