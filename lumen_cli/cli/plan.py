"""Which inputs to read and where each output goes: files, folders (optionally recursive), and
``-`` for stdin/stdout. No image decoding here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lumen_cli.errors import UsageError

STDIO = "-"
_SUFFIXES = {
    "png": ".png",
    "jpeg": ".jpg",
    "jpg": ".jpg",
    "tiff": ".tif",
    "tif": ".tif",
    "webp": ".webp",
    "bmp": ".bmp",
}


@dataclass
class Job:
    source: str  # a path, or "-" for stdin
    rel: Path | None  # path relative to the folder it was found in (None for named files)
    dest: str | None = None  # a path, or "-" for stdout


def image_suffixes() -> frozenset[str]:
    from lumen_cli.io.picture import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def collect(inputs: list[str], recursive: bool, warn) -> tuple[list[Job], list[str]]:
    """Expand INPUT arguments into jobs. Returns (jobs, missing inputs). Non-image files inside a
    folder are skipped with a warning; a named file is always tried (and fails if it is not an
    image)."""
    if STDIO in inputs and len(inputs) > 1:
        raise UsageError("'-' (stdin) cannot be combined with other inputs")
    jobs, missing = [], []
    exts = image_suffixes()
    for arg in inputs:
        if arg == STDIO:
            jobs.append(Job(STDIO, None))
            continue
        p = Path(arg)
        if p.is_dir():
            walker = sorted(p.rglob("*")) if recursive else sorted(p.iterdir())
            for f in walker:
                if not f.is_file() or any(part.startswith(".") for part in f.relative_to(p).parts):
                    continue
                if f.suffix.lower() in exts:
                    jobs.append(Job(str(f), f.relative_to(p)))
                else:
                    warn(f"skipping {f}: not an image file (suffix {f.suffix or 'none'})")
        elif p.is_file():
            jobs.append(Job(str(p), None))
        else:
            missing.append(arg)
    return jobs, missing


def assign_outputs(
    jobs: list[Job], output: str | None, suffix: str | None, fmt: str | None, inputs: list[str]
) -> None:
    """Fill ``job.dest``. OUTPUT may be a file (one input), a folder (mirrors input trees), '-'
    (stdout, one input) or absent (next to each input with a suffix; stdin goes to stdout)."""
    ext = None
    if fmt is not None:
        try:
            ext = _SUFFIXES[fmt.lower()]
        except KeyError:
            raise UsageError(f"--format {fmt!r}: expected one of png, jpeg, tiff, webp") from None
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    if output == STDIO:
        if not (single and len(jobs) <= 1):
            raise UsageError("-o - (stdout) takes exactly one input image")
        for j in jobs:
            j.dest = STDIO
        return
    if output is None:
        for j in jobs:
            if j.source == STDIO:
                j.dest = STDIO
            else:
                src = Path(j.source)
                j.dest = str(
                    src.with_name(
                        src.stem
                        + (suffix if suffix is not None else "_lumen")
                        + (ext or src.suffix)
                    )
                )
        return
    out = Path(output)
    as_file = single and not out.is_dir() and not output.endswith(os.sep) and out.suffix != ""
    if as_file:
        for j in jobs:
            j.dest = str(out if ext is None else out.with_suffix(ext))
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {output}: several inputs need an output folder, and this is a file")
    for j in jobs:
        if j.source == STDIO:
            raise UsageError("stdin input needs -o FILE or -o - (stdout), not a folder")
        rel = j.rel if j.rel is not None else Path(Path(j.source).name)
        name = rel.stem + (suffix or "") + (ext or rel.suffix)
        j.dest = str(out / rel.parent / name)


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
