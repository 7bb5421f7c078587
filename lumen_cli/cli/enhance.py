"""``lumen enhance``: files, folders and pipes through one method."""

from __future__ import annotations

from pathlib import Path

import typer

from lumen_cli.cli import console
from lumen_cli.cli.choices import (
    THREADS_HELP,
    Format,
    Precision,
    check_format_matches,
    device_option,
    method_option,
    precision_option,
    refuse_tty_stdout,
)
from lumen_cli.cli.plan import STDIO, assign_outputs, check_suffix, collect
from lumen_cli.errors import EXIT_FAILED, UsageError

HELP = """Enhance low-light photos.

INPUT may be image files, folders (--recursive to walk them) or '-' for stdin. OUTPUT (-o) may
be a file (one input), a folder (input trees are mirrored), or '-' for stdout; without -o each
result is written next to its input with the suffix _lumen. All messages go to stderr.

Exit codes: 0 all done; 1 some inputs failed (the others are written); 2 bad usage or
configuration; 3 weights missing or not verified; 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM).
"""


def enhance(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Files, folders or '-'."),
    output: str = typer.Option(None, "-o", "--output", help="File, folder or '-' (stdout)."),
    method: str = method_option(),
    steps: int = typer.Option(None, "--steps", min=1, help="Sampling steps (diffusion methods)."),
    sampler: str = typer.Option(
        None, "--sampler", help="refusion: reverse sampler sde, ode or posterior (default)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling noise (same on any device)."),
    exposure: float = typer.Option(
        None,
        "--exposure",
        help="Light level, 0.05 to 8; 1.0 is the method's natural brightness. Above 1 the "
        "highlights roll off (kind, diff-retinex) rather than clip.",
    ),
    device: str = device_option(),
    precision: Precision = precision_option(),
    tile: str = typer.Option("auto", "--tile", help="Tile size in pixels, 'auto' or 0 (none)."),
    tile_overlap: int = typer.Option(32, "--tile-overlap", min=0, help="Tile overlap, pixels."),
    fmt: Format = typer.Option(
        None, "--format", help="Output format (default: the output's suffix, else the input's)."
    ),
    quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG/WebP quality."),
    suffix: str = typer.Option(None, "--suffix", help="Appended to output file names."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Walk folders."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip existing outputs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs/inputs."),
    weights: Path = typer.Option(
        None,
        "--weights",
        help="A lumen .safetensors file, or a Hub file: ORG/REPO[@REVISION][:FILE] (verified).",
    ),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Raise the image-size guard."),
    threads: int = typer.Option(0, "--threads", min=0, help=THREADS_HELP),
    json_lines: bool = typer.Option(False, "--json", help="One JSON record per file on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or chatter."),
    shard: str = typer.Option(
        None,
        "--shard",
        metavar="K/N",
        help="Process only shard K of N (K from 0): inputs sorted by path, every N-th from K. "
        "For job arrays; outputs are named as without --shard.",
    ),
) -> None:
    console.set_quiet(quiet)
    console.route_warnings()
    if quiet or json_lines:
        from lumen_cli.weights.hub import silence_progress

        silence_progress()
    from lumen_cli.cli.common import check_numbers

    check_numbers(exposure=exposure, max_pixels=max_pixels)
    check_suffix(suffix)
    jobs, missing = collect(inputs, recursive, console.info)
    for m in missing:
        console.error(f"{m}: no such file or folder")
    if not jobs:
        raise UsageError("no input images found") if not missing else typer.Exit(EXIT_FAILED)
    check_format_matches(output, fmt)
    assign_outputs(jobs, output, suffix, fmt, inputs)
    if shard is not None:
        jobs = _shard(jobs, shard)
        if not jobs:
            raise typer.Exit(EXIT_FAILED if missing else 0)
    if json_lines and any(j.dest == STDIO for j in jobs):
        raise UsageError(
            "--json writes records to stdout; it cannot be used with image output "
            "on stdout (give -o FILE)"
        )
    refuse_tty_stdout(any(j.dest == STDIO for j in jobs))
    tile_px = parse_tile(tile)
    if sampler is not None and sampler not in ("sde", "ode", "posterior"):
        raise UsageError(f"--sampler: one of sde, ode, posterior (got {sampler!r})")
    pipe = setup_pipeline_for(method, device, precision, weights, threads)
    from lumen_cli.io.picture import DEFAULT_MAX_PIXELS

    if steps is not None and pipe.default_steps is None:
        console.info(f"note: --steps has no effect on method {method} (not a sampling method)")
    n_steps = steps or pipe.default_steps

    def work(job, progress):
        from lumen_cli.api import enhance_tensor
        from lumen_cli.cli.common import read_input
        from lumen_cli.io import write_image

        pic, x = read_input(job, max_pixels or DEFAULT_MAX_PIXELS)
        y = enhance_tensor(
            pipe,
            x,
            steps=steps,
            seed=seed,
            exposure=exposure,
            extra={"sampler": sampler} if sampler else None,
            progress=progress,
            tile=tile_px,
            overlap=tile_overlap,
            precision=precision,
        )
        pixels = y[0].permute(1, 2, 0).numpy()
        dest = job.dest
        if dest == STDIO:
            import sys

            write_image(pic, pixels, sys.stdout.buffer, format=fmt or None, quality=quality)
            sys.stdout.buffer.flush()
        else:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            write_image(pic, pixels, dest, format=fmt or None, quality=quality, overwrite=overwrite)
        return {"width": int(x.shape[-1]), "height": int(x.shape[-2])}

    from lumen_cli.cli.common import run_jobs

    info = {"method": method}
    if n_steps:
        info["steps"] = n_steps
    code = run_jobs(
        jobs,
        work,
        quiet=quiet,
        json_lines=json_lines,
        dests_of=lambda j: [j.dest],
        overwrite=overwrite,
        skip_existing=skip_existing,
        info=info,
    )
    if missing:
        code = EXIT_FAILED
    raise typer.Exit(code)


def _shard(jobs, spec: str):
    from lumen_cli.cli.shard import parse_shard, take_shard

    if any(j.source == STDIO for j in jobs):
        raise UsageError("--shard splits files and folders, not stdin")
    part = take_shard(jobs, parse_shard(spec))
    console.info(f"lumen: shard {spec.strip()}: {len(part)} of {len(jobs)} inputs")
    return part


def parse_tile(tile: str):
    t = (tile or "auto").strip().lower()
    if t == "auto":
        return "auto"
    try:
        n = int(t)
    except ValueError:
        raise UsageError(f"--tile {tile!r}: expected a number of pixels, 'auto' or 0") from None
    if n < 0:
        raise UsageError("--tile must be >= 0")
    return None if n == 0 else n


def setup_pipeline_for(method, device, precision, weights, threads):
    from lumen_cli.cli.common import setup_pipeline

    return setup_pipeline(method, device, precision, weights, threads)
