"""Pieces shared by ``enhance`` and ``decompose``: device and pipeline set-up, reading one input,
and the per-file loop with its report."""

from __future__ import annotations

import errno
import os
import sys
import time
import traceback
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
    """None if the job may write, 'skip' if every output exists and --skip-existing was given,
    else an error message. (The final word is the write itself: an output that appears later
    is still never replaced without --overwrite, see ``lumen_cli.atomic``.)"""
    files = [d for d in dests if d != STDIO]
    for d in files:
        if job.source != STDIO and same_file(job.source, d) and not overwrite:
            return f"output {d} is the input file itself; pass --overwrite to replace it"
    existing = [d for d in files if os.path.lexists(d)]
    if not existing or overwrite:
        return None
    if skip_existing:
        return "skip" if len(existing) == len(files) else None  # the missing ones are written
    return f"output {existing[0]} exists; pass --overwrite or --skip-existing"


def describe_error(e: BaseException) -> str:
    """A one-line message for any per-file failure (no ``[Errno N]`` jargon, no traceback)."""
    if isinstance(e, LumenError):
        return str(e)
    if isinstance(e, MemoryError):
        return "not enough memory for this image (try a smaller --tile, e.g. --tile 512)"
    if isinstance(e, OSError):
        return describe_os_error(e)
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"unexpected {type(e).__name__}{': ' + msg if msg else ''} (LUMEN_DEBUG=1 shows where)"


_OS_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EISDIR: "is a folder",
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the file system is read-only",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOENT: "no such file or folder",
}


def describe_os_error(e: OSError) -> str:
    reason = _OS_REASONS.get(e.errno) or (e.strerror or str(e)).lower()
    where = e.filename if e.filename is not None else ""
    return f"{where}: {reason}" if where else reason


def sweep_outputs(dests: list[str]) -> None:
    """Remove temporaries that killed runs left in the output folders (see lumen_cli.atomic)."""
    from lumen_cli import atomic

    for folder in sorted({os.path.dirname(os.path.abspath(d)) for d in dests if d != STDIO}):
        removed = atomic.sweep(folder)
        if removed:
            console.info(f"removed {len(removed)} temporary file(s) of an earlier run in {folder}")


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
    """Run ``work(job, progress) -> dict`` for every job. Any exception of one file (a lumen
    error, an OSError, a bug) is reported with the file's name and the batch goes on; Ctrl-C
    and SIGTERM stop it after the summary so far. Returns the exit code."""
    from lumen_cli.cli.plan import mark_conflicts
    from lumen_cli.io.picture import OutputExistsError

    mark_conflicts(jobs, dests_of, overwrite)
    sweep_outputs([d for j in jobs for d in dests_of(j)])
    report = Report(quiet=quiet, json_lines=json_lines)
    try:
        with console.Progress(len(jobs), quiet) as prog:
            for job in jobs:
                label = "<stdin>" if job.source == STDIO else job.source
                prog.start_file(Path(label).name)
                t0 = time.perf_counter()
                try:
                    if job.conflict:
                        raise UsageError(job.conflict)
                    verdict = check_dest(job, dests_of(job), overwrite, skip_existing)
                    if verdict == "skip":
                        report.record("skipped", label, job.dest, reason="output exists", **info)
                        prog.log(f"skipped {label}: {job.dest} exists")
                        continue
                    if verdict is not None:
                        raise OutputExistsError(verdict)
                    extra = work(job, prog.inner)
                    secs = round(time.perf_counter() - t0, 3)
                    report.record("done", label, job.dest, seconds=secs, **info, **extra)
                    if job.dest != STDIO:
                        prog.log(f"{label} -> {job.dest} ({secs:.2f} s)")
                except OutputExistsError as e:
                    if skip_existing:  # it appeared while this file was being processed
                        report.record("skipped", label, job.dest, reason="output exists", **info)
                        prog.log(f"skipped {label}: {job.dest} appeared meanwhile")
                    else:
                        _fail(report, label, job, e, info)
                except UsageError:
                    if job.source == STDIO:  # e.g. empty stdin: the one job, a usage error
                        raise
                    _fail(report, label, job, sys.exc_info()[1], info)
                except Exception as e:  # noqa: BLE001 - per-file isolation is the point
                    _fail(report, label, job, e, info)
                finally:
                    prog.file_done()
    except BaseException:  # Ctrl-C / SIGTERM: say how far the batch got, then unwind
        if len(jobs) > 1:
            console.info(report.summary())
        raise
    if len(jobs) > 1 or report.failed or report.skipped:
        console.info(report.summary())
    return report.exit_code


def _fail(report: Report, label: str, job: Job, e: BaseException, info: dict) -> None:
    msg = describe_error(e)
    if os.environ.get("LUMEN_DEBUG") and not isinstance(e, LumenError):
        traceback.print_exception(e)
    console.error(msg if msg.startswith(label) else f"{label}: {msg}")
    report.record("failed", label, job.dest, error=msg, **info)


def check_numbers(*, exposure: float | None = None, max_pixels: int | None = None) -> None:
    """Range checks typer cannot word well (NaN passes its bounds, -1 pixels printed as -0.0)."""
    if exposure is not None:  # the one check of EnhanceOptions, worded for the flag
        from lumen_cli.pipelines.base import check_exposure

        try:
            check_exposure(exposure)
        except UsageError as e:
            raise UsageError(f"--{e}") from None
    if max_pixels is not None and max_pixels < 1:
        raise UsageError(f"--max-pixels {max_pixels}: expected a positive number of pixels")
