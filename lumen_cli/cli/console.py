"""Everything lumen says goes to stderr (stdout carries images or JSON records)."""

from __future__ import annotations

import sys
import warnings

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def info(msg: str) -> None:
    if not _quiet:
        print(msg, file=sys.stderr, flush=True)


def error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)


def route_warnings() -> None:
    """Show Python warnings (ICC, EXIF, precision fallbacks) as one short stderr line each."""

    def show(message, category, filename, lineno, file=None, line=None):
        if not _quiet:
            print(f"warning: {message}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    warnings.simplefilter("default")


class Progress:
    """A rich progress display on stderr: one bar for the files of a batch and one for the
    current image's steps or tiles. Silent when stderr is not a terminal or with --quiet."""

    def __init__(self, total_files: int, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self._p = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._files = self._p.add_task("files", total=total_files, visible=total_files > 1)
            self._inner = self._p.add_task("", total=1, visible=False)

    def __enter__(self):
        if self._p:
            self._p.start()
        return self

    def __exit__(self, *exc):
        if self._p:
            self._p.stop()

    def start_file(self, name: str) -> None:
        if self._p:
            self._p.update(self._inner, description=name, completed=0, total=1, visible=False)

    def inner(self, what: str, done: int, total: int) -> None:
        if self._p:
            self._p.update(self._inner, description=what, completed=done, total=total, visible=True)

    def file_done(self) -> None:
        if self._p:
            self._p.advance(self._files)

    def log(self, msg: str) -> None:
        if self._p:
            self._p.console.print(msg, markup=False, highlight=False)
        else:
            info(msg)
