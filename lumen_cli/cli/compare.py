"""``lumen compare``: one contact sheet of several methods on the same photos."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from lumen_cli.cli import console

HELP = """Enhance photos with several methods and write one labelled contact sheet.

Each row is one INPUT: the input itself, then each method's result captioned with the method's
name and the seconds it took (enhancement only, weights already loaded), then, with --ref, the
reference photo, and PSNR / SSIM of every result against it (8-bit RGB, 11x11 Gaussian SSIM:
the protocol of 'lumen eval'). A reference is the file in the --ref folder with the input's
name, or else its stem with any image suffix.

Example:  lumen compare night.jpg street.heic -o sheet.png --methods retinex,kind,diff-retinex
"""


def compare(
    inputs: list[Path] = typer.Argument(..., metavar="INPUT...", help="Image files."),
    output: Path = typer.Option(..., "-o", "--output", help="The sheet (.png, .jpg, ...)."),
    methods: str = typer.Option(
        None,
        "--methods",
        help="Comma-separated methods (default: every method in 'lumen methods').",
    ),
    ref: Path = typer.Option(None, "--ref", help="Folder of reference photos (adds PSNR/SSIM)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Sampling steps (diffusion methods)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling noise."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N] | mps."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16."),
    height: int = typer.Option(256, "--height", min=32, help="Thumbnail height in pixels."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing sheet."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or chatter."),
) -> None:
    from lumen_cli.errors import UsageError
    from lumen_cli.pipelines import registry

    console.set_quiet(quiet)
    console.route_warnings()
    if quiet:
        from lumen_cli.weights.hub import silence_progress

        silence_progress()
    names = (
        [m.strip() for m in methods.split(",") if m.strip()] if methods else list(registry.METHODS)
    )
    for m in names:
        if m not in registry.METHODS:
            raise UsageError(
                f"--methods: unknown method {m!r}; choose from {', '.join(registry.METHODS)}"
            )
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    if ref is not None and not ref.is_dir():
        raise UsageError(f"--ref {ref}: not a folder")
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    rows = compare_rows(inputs, names, ref, steps, seed, device, precision)
    write_sheet(rows, output, height)
    console.info(f"lumen: wrote {output} ({len(inputs)} inputs x {len(names)} methods)")


def compare_rows(inputs, names, ref, steps, seed, device, precision):
    """Run every method on every input; returns the sheet's rows of ``sheet.Cell``."""
    import torch

    from lumen_cli import metrics
    from lumen_cli.cli.common import setup_pipeline
    from lumen_cli.errors import LumenError
    from lumen_cli.io import read_image
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image
    from lumen_cli.sheet import Cell

    pipes = {}
    for m in names:
        try:
            pipes[m] = setup_pipeline(m, device, precision, None, 0)
        except LumenError as e:
            console.error(f"{m}: skipped ({e})")
    if not pipes:
        raise LumenError("no method could be loaded")
    rows = []
    for path in inputs:
        pic = read_image(path)
        x = torch.from_numpy(pic.pixels).permute(2, 0, 1).unsqueeze(0)
        gt = _reference(path, ref, x.shape[-2:]) if ref is not None else None
        row = [Cell(pic.pixels, [path.name, f"input {x.shape[-1]}x{x.shape[-2]}"])]
        for m, pipe in pipes.items():
            n_steps = (steps or pipe.default_steps) if pipe.default_steps else None
            opts = EnhanceOptions(steps=n_steps, seed=seed)
            t0 = time.perf_counter()
            y = enhance_image(pipe, x, opts, precision=precision)
            secs = time.perf_counter() - t0
            lines = [m, f"{secs:.2f} s" + (f", {opts.steps} steps" if opts.steps else "")]
            if gt is not None:
                p, s = float(metrics.psnr(y, gt)), float(metrics.ssim(y, gt))
                lines.append(f"PSNR {p:.2f} dB  SSIM {s:.4f}")
            row.append(Cell(y[0].permute(1, 2, 0).numpy(), lines))
            console.info(f"{path.name}: {m} {secs:.2f} s")
        if gt is not None:
            row.append(Cell(gt[0].permute(1, 2, 0).numpy(), ["reference"]))
        rows.append(row)
    return rows


def _reference(path: Path, ref: Path, size):
    """(1,3,H,W) reference of ``path`` from the folder ``ref``, or None with a warning."""
    import torch

    from lumen_cli.io import IMAGE_EXTENSIONS, read_image

    cands = [ref / path.name] + sorted(
        p for p in ref.glob(f"{path.stem}.*") if p.suffix.lower() in IMAGE_EXTENSIONS
    )
    found = next((p for p in cands if p.is_file()), None)
    if found is None:
        console.info(f"{path.name}: no reference named {path.stem}.* in {ref}; no PSNR/SSIM")
        return None
    gt = torch.from_numpy(read_image(found).pixels).permute(2, 0, 1).unsqueeze(0)
    if tuple(gt.shape[-2:]) != tuple(size):
        console.info(f"{path.name}: reference {found.name} differs in size; no PSNR/SSIM")
        return None
    return gt


def write_sheet(rows, output: Path, height: int) -> None:
    """Draw the rows and write the sheet atomically (format from the suffix, PNG if unknown)."""
    import numpy as np

    from lumen_cli.io import Picture, write_image
    from lumen_cli.sheet import draw_sheet

    arr = draw_sheet(rows, height=height).astype(np.float32) / np.float32(255)
    blank = Picture(arr, None, False, 8, "PNG", None, None, "<sheet>")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_image(blank, arr, output, bit_depth=8)
