"""``lumen decompose``: the Retinex maps R (reflectance) and L (illumination) of each input."""

from __future__ import annotations

from pathlib import Path

import typer

from lumen_cli.cli import console
from lumen_cli.cli.choices import (
    THREADS_HELP,
    Precision,
    device_option,
    method_option,
    precision_option,
)
from lumen_cli.cli.enhance import parse_tile
from lumen_cli.cli.plan import STDIO, collect
from lumen_cli.errors import EXIT_FAILED, UsageError

HELP = """Write the Retinex maps of each input into OUTPUT_DIR:
<stem>_reflectance.png (RGB, the input's bit depth) and <stem>_illumination.png (16-bit
grayscale); with --preview also <stem>_preview.png, a strip input | R | L to look at.
Methods may add maps (diff-retinex --adjusted: the diffusion-adjusted R and L).

Exit codes as for 'lumen enhance'.
"""

PREVIEW_HEIGHT = 512


def decompose(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Files, folders or '-'."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
    method: str = method_option(),
    preview: bool = typer.Option(False, "--preview", help="Also write an input|R|L strip."),
    adjusted: bool = typer.Option(False, "--adjusted", help="Also the adjusted maps, if any."),
    steps: int = typer.Option(None, "--steps", min=1, help="Sampling steps (diffusion methods)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling noise (same on any device)."),
    device: str = device_option(),
    precision: Precision = precision_option(),
    tile: str = typer.Option("auto", "--tile", help="Tile size in pixels, 'auto' or 0 (none)."),
    tile_overlap: int = typer.Option(32, "--tile-overlap", min=0, help="Tile overlap, pixels."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Walk folders."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip existing maps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing maps."),
    weights: Path = typer.Option(
        None, "--weights", help="A lumen .safetensors file, or ORG/REPO[@REVISION][:FILE]."
    ),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Raise the image-size guard."),
    threads: int = typer.Option(0, "--threads", min=0, help=THREADS_HELP),
    json_lines: bool = typer.Option(False, "--json", help="One JSON record per file on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or chatter."),
) -> None:
    console.set_quiet(quiet)
    console.route_warnings()
    from lumen_cli.cli.common import check_numbers

    check_numbers(max_pixels=max_pixels)
    if str(output) == STDIO:
        raise UsageError("decompose writes several files: -o must be a folder")
    jobs, missing = collect(inputs, recursive, console.info)
    for m in missing:
        console.error(f"{m}: no such file or folder")
    if not jobs:
        raise UsageError("no input images found") if not missing else typer.Exit(EXIT_FAILED)
    for j in jobs:
        rel = (
            j.rel
            if j.rel is not None
            else Path("stdin" if j.source == STDIO else Path(j.source).name)
        )
        j.dest = str(output / rel.parent / rel.stem)  # a stem: maps add their own suffixes
    tile_px = parse_tile(tile)
    from lumen_cli.cli.common import run_jobs, setup_pipeline

    pipe = setup_pipeline(method, device, precision, weights, threads)
    from lumen_cli.pipelines.base import Pipeline

    if not getattr(pipe, "decomposes", True) or type(pipe).decompose is Pipeline.decompose:
        raise UsageError(f"method {method} has no Retinex decomposition (see 'lumen methods')")

    def dests(job):
        names = ["reflectance", "illumination"] + (["preview"] if preview else [])
        return [f"{job.dest}_{n}.png" for n in names]

    def keep(dest: str) -> bool:
        """With --skip-existing, maps a killed run already wrote are kept; the rest written."""
        return skip_existing and not overwrite and Path(dest).exists()

    def work(job, progress):
        import numpy as np

        from lumen_cli.api import decompose_tensor
        from lumen_cli.cli.common import read_input
        from lumen_cli.io import write_image
        from lumen_cli.io.picture import DEFAULT_MAX_PIXELS

        pic, x = read_input(job, max_pixels or DEFAULT_MAX_PIXELS)
        maps = decompose_tensor(
            pipe,
            x,
            steps=steps,
            seed=seed,
            progress=progress,
            extra={"adjusted": adjusted},
            tile=tile_px,
            overlap=tile_overlap,
            precision=precision,
        )
        Path(job.dest).parent.mkdir(parents=True, exist_ok=True)
        plain = _plain(pic)
        written = []
        for name, m in maps.items():
            arr = m[0].permute(1, 2, 0).numpy()
            gray = arr.shape[-1] == 1
            if gray:
                arr = np.repeat(arr, 3, axis=-1)
            dest = f"{job.dest}_{name}.png"
            if keep(dest):
                continue
            write_image(
                plain,
                arr,
                dest,
                format="png",
                bit_depth=16 if gray else pic.bit_depth,
                grayscale=gray,
                overwrite=overwrite,
            )
            written.append(dest)
        dest = f"{job.dest}_preview.png"
        if preview and not keep(dest):
            write_image(
                plain,
                _strip(pic.pixels, maps),
                dest,
                format="png",
                bit_depth=8,
                grayscale=False,
                overwrite=overwrite,
            )
            written.append(dest)
        return {"outputs": written}

    code = run_jobs(
        jobs,
        work,
        quiet=quiet,
        json_lines=json_lines,
        dests_of=dests,
        overwrite=overwrite,
        skip_existing=skip_existing,
        info={"method": method},
    )
    raise typer.Exit(EXIT_FAILED if missing else code)


def _plain(pic):
    """The source picture's metadata without alpha (maps carry no transparency)."""
    import dataclasses

    return dataclasses.replace(pic, alpha=None, grayscale=False)


def _strip(pixels, maps):
    """input | R | L side by side, each scaled to PREVIEW_HEIGHT rows: (h, 3w, 3) float32."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    panels = [x, maps["reflectance"], maps["illumination"].expand(-1, 3, -1, -1)]
    h, w = x.shape[-2:]
    s = min(1.0, PREVIEW_HEIGHT / h)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    small = [F.interpolate(p.float(), size=size, mode="area") for p in panels]
    return np.ascontiguousarray(torch.cat(small, dim=-1)[0].permute(1, 2, 0).numpy())
