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
    root: Path | None = None  # the folder argument it was found in, or the file's own folder
    conflict: str | None = None  # why it must not run (its output is another job's), if so


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
            try:
                walker = sorted(p.rglob("*")) if recursive else sorted(p.iterdir())
            except OSError as e:
                raise UsageError(f"{arg}: cannot list this folder ({e.strerror or e})") from None
            for f in walker:
                if any(part.startswith(".") for part in f.relative_to(p).parts):
                    continue
                if not f.is_file():
                    if f.is_symlink():
                        warn(f"skipping {f}: broken link (its target does not exist)")
                    continue
                if f.suffix.lower() in exts:
                    jobs.append(Job(str(f), f.relative_to(p), root=p))
                else:
                    warn(f"skipping {f}: not an image file (suffix {f.suffix or 'none'})")
        elif p.is_file():
            jobs.append(Job(str(p), None, root=p.parent))
        else:
            missing.append(arg)
    return _unique(jobs), missing


def _unique(jobs: list[Job]) -> list[Job]:
    """Drop repeats of the same input file (named twice, or named and inside a folder)."""
    seen, out = set(), []
    for j in jobs:
        key = _key(j.source) if j.source != STDIO else STDIO
        if key not in seen:
            seen.add(key)
            out.append(j)
    return out


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def check_suffix(suffix: str | None) -> None:
    """A --suffix is part of a file name: no folder separators (they would write elsewhere)."""
    if suffix is None:
        return
    bad = {"/", "\\", "\0", os.sep} | ({os.altsep} if os.altsep else set())
    if any(c in suffix for c in bad):
        raise UsageError(
            f"--suffix {suffix!r}: must not contain folder separators or NUL "
            "(it is appended to each output file name; use -o to pick a folder)"
        )


def assign_outputs(
    jobs: list[Job], output: str | None, suffix: str | None, fmt: str | None, inputs: list[str]
) -> None:
    """Fill ``job.dest``. OUTPUT may be a file (one input), a folder (mirrors input trees), '-'
    (stdout, one input) or absent (next to each input with a suffix; stdin goes to stdout)."""
    from lumen_cli.io.picture import default_output_suffix

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
                        + (ext or default_output_suffix(src.suffix))
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
    _to_folder(jobs, out, suffix, ext, mirror=False)
    if _clashes(jobs) and _to_folder(jobs, out, suffix, ext, mirror=True):
        _note(f"note: several inputs have the same name; each input folder is mirrored under {out}")


def _to_folder(jobs, out: Path, suffix, ext, mirror: bool) -> bool:
    """Set dests under ``out``; with ``mirror`` each input's folder (relative to the folder all
    inputs share) becomes a subfolder. Returns False if mirroring is impossible."""
    from lumen_cli.io.picture import default_output_suffix

    top = None
    if mirror:
        try:
            top = os.path.commonpath([os.path.realpath(j.root or ".") for j in jobs])
        except ValueError:  # different drives
            return False
    for j in jobs:
        rel = j.rel if j.rel is not None else Path(Path(j.source).name)
        name = rel.stem + (suffix or "") + (ext or default_output_suffix(rel.suffix))
        base = out
        if top is not None:
            sub = os.path.relpath(os.path.realpath(j.root or "."), top)
            base = out / sub if sub != "." else out
        j.dest = str(base / rel.parent / name)
    return True


def _clashes(jobs: list[Job]) -> bool:
    keys = [os.path.normcase(os.path.abspath(j.dest)) for j in jobs if j.dest != STDIO]
    return len(set(keys)) < len(keys)


def _note(msg: str) -> None:
    from lumen_cli.cli import console

    console.info(msg)


def mark_conflicts(jobs: list[Job], dests_of, overwrite: bool) -> None:
    """Set ``job.conflict`` for every job that would write a file another job of this run also
    writes (or, with ``overwrite``, reads): the first job keeps that output, later ones fail
    (never two "done" with one file left)."""
    owner: dict[str, str] = {}
    inputs = {_key(j.source): j.source for j in jobs if j.source != STDIO}
    for j in jobs:
        for d in dests_of(j):
            if d == STDIO:
                continue
            k = _key(d)
            if k in owner:
                j.conflict = (
                    f"its output {d} is also the output of {owner[k]}; "
                    "rename one of them or run them separately"
                )
                break
            if overwrite and k in inputs and (j.source == STDIO or k != _key(j.source)):
                j.conflict = f"its output {d} is another input of this run; choose another -o"
                break
        else:
            for d in dests_of(j):
                if d != STDIO:
                    owner[_key(d)] = j.source


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
