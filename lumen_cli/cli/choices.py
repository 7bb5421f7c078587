"""Typed choices of the CLI options (shown in ``--help``, checked by the parser, completed by
the shell) and the checks that relate options to each other.

The method names come from ``pipelines.registry.METHODS`` (which imports no torch, so neither
does ``lumen --help`` nor shell completion): listed in ``--help`` as they are at import, and
checked and completed against the registry as it is when the command line is parsed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

import typer

from lumen_cli.errors import UsageError
from lumen_cli.pipelines.registry import DEFAULT_METHOD, METHODS

Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: Output formats lumen writes (names as --format takes them; jpg/tif are aliases).
Format = Literal["png", "jpeg", "jpg", "tiff", "tif", "webp", "bmp"]

DEVICE_METAVAR = "[auto|cpu|cuda[:N]|mps]"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_CANON = {"jpg": "jpeg", "tif": "tiff"}
_FORMAT_SUFFIXES = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
    ".bmp": "bmp",
}

THREADS_HELP = (
    "CPU threads (0: one per physical core this process may use, within its container's CPU "
    "quota; $LUMEN_THREADS sets a default)."
)
METHOD_HELP = (
    f"See 'lumen methods'. The default, {DEFAULT_METHOD}, needs no weights and is the fastest "
    "on a CPU; the learned methods give better pictures at several times the cost (kind "
    "scores best on the SICE validation pairs and is the fastest of them: BENCHMARKS.md)."
)


def method_option(default: str | None = DEFAULT_METHOD, help: str = METHOD_HELP):
    """The --method/-m option: a registry name, shown as a choice, completed by the shell."""
    return typer.Option(
        default,
        "--method",
        "-m",
        metavar="[" + "|".join(METHODS) + "]",
        callback=check_method,
        autocompletion=complete_method,
        help=help,
    )


def check_method(value: str | None) -> str | None:
    """Parser callback: a method of the registry."""
    if value is not None and value not in METHODS:
        raise typer.BadParameter(f"unknown method {value!r}; choose one of: {', '.join(METHODS)}")
    return value


def complete_method(incomplete: str) -> list[str]:
    return [m for m in METHODS if m.startswith(incomplete)]


def complete_weights(incomplete: str) -> list[str]:
    """Names of the manifest's weight files (method and preset, e.g. kind-lite)."""
    try:
        from lumen_cli.weights.manifest import load_manifest

        names = list(load_manifest())
    except Exception:  # a broken manifest must not break the shell
        return []
    return [n for n in names if n.startswith(incomplete)]


def device_option(help: str = "auto: CUDA, then MPS, then CPU."):
    """The --device option: checked, shown as a choice, completed by the shell."""
    return typer.Option(
        "auto",
        "--device",
        metavar=DEVICE_METAVAR,
        callback=check_device,
        autocompletion=complete_device,
        help=help,
    )


def precision_option(help: str = "auto: bf16 on CPUs with AMX/AVX512-BF16, else fp32."):
    """The --precision option (use with the ``Precision`` annotation)."""
    return typer.Option("auto", "--precision", help=help)


def check_device(value: str | None) -> str | None:
    """Parser callback: 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'."""
    if value is None:
        return value
    v = value.strip().lower()
    if not _DEVICE.fullmatch(v):
        raise typer.BadParameter(f"{value!r}: expected one of auto, cpu, cuda, cuda:N, mps")
    return v


def complete_device(incomplete: str) -> list[str]:
    """Shell completion of --device (the CUDA indices this machine has are not probed, so
    completion stays instant)."""
    return [d for d in ("auto", "cpu", "cuda", "cuda:0", "mps") if d.startswith(incomplete)]


def check_format_matches(output: str | None, fmt: str | None) -> None:
    """Refuse ``-o x.png --format bmp``: a file name whose suffix names another format."""
    if fmt is None or output in (None, "-"):
        return
    out = Path(output)
    named = _FORMAT_SUFFIXES.get(out.suffix.lower())
    if named is None or out.is_dir() or output.endswith(("/", "\\")):
        return
    want = _CANON.get(fmt.lower(), fmt.lower())
    if named != want:
        raise UsageError(
            f"-o {output} names a {named.upper()} file but --format is {fmt}; "
            f"give -o {out.with_suffix('')}.{'jpg' if want == 'jpeg' else want} or drop --format"
        )


def refuse_tty_stdout(writes_stdout: bool) -> None:
    """Image bytes are never written to a terminal (as other image tools refuse)."""
    if writes_stdout and sys.stdout.isatty():
        raise UsageError(
            "refusing to write image data to a terminal: redirect stdout "
            "(lumen enhance - -o - < in.jpg > out.png) or give -o FILE"
        )
