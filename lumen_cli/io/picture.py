"""The in-memory picture every method works on, and the names of the formats lumen reads/writes.

Nothing here imports Pillow or OpenCV, so this module is cheap to import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumen_cli.errors import ImageError
from lumen_cli.io.heif import HEIF_SUFFIXES
from lumen_cli.io.raw import RAW_SUFFIXES

#: Suffixes (lowercase, with the dot) that lumen treats as images when scanning folders
#: (HEIC/AVIF and camera RAW are read through optional extras, see io/heif.py and io/raw.py).
IMAGE_EXTENSIONS: frozenset[str] = (
    frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})
    | HEIF_SUFFIXES
    | RAW_SUFFIXES
)

#: Decompression-bomb guard: larger images need ``--max-pixels`` (Pillow's own default is ~89 MP,
#: too low for big scans and panoramas; 200 MP is a 16k x 12k image, ~2.4 GB as float32 RGB).
DEFAULT_MAX_PIXELS: int = 200_000_000

#: Pillow format names lumen can write, keyed by suffix.
_SUFFIX_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_NAME_FORMATS = {s.lstrip("."): f for s, f in _SUFFIX_FORMATS.items()}
#: Pillow decoders lumen uses (the JPEG one also opens MPO, the multi-picture JPEG of some cameras).
READ_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")  # JPEG includes MPO
WRITE_FORMATS = frozenset(_SUFFIX_FORMATS.values())
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
#: The usual suffix for each written format.
FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
#: Sources lumen reads but does not write, and what their results default to.
_DEFAULT_FOR = {"MPO": "JPEG", "HEIF": "JPEG", "AVIF": "JPEG", "RAW": "PNG"}


def default_output_suffix(suffix: str) -> str:
    """The suffix of a result written beside (or mirrored from) an input with ``suffix``:
    the same, except for formats lumen only reads (HEIC/AVIF -> .jpg, camera RAW -> .png)."""
    s = suffix.lower()
    if s in HEIF_SUFFIXES:
        return ".jpg"
    if s in RAW_SUFFIXES:
        return ".png"
    return suffix


class ImageReadError(ImageError):
    """An input cannot be read: missing, not an image, corrupt, truncated or too large."""


class ImageWriteError(ImageError):
    """An output cannot be written (exists without overwrite, unsupported option, disk error)."""


class OutputExistsError(ImageWriteError):
    """The output exists (or appeared while lumen worked) and replacing it was not allowed."""


@dataclass
class Picture:
    """One decoded image plus what is needed to write the result back faithfully.

    pixels: (H, W, 3) float32 in [0, 1], sRGB gamma-encoded, EXIF orientation applied.
    alpha: (H, W) float32 in [0, 1] or None; carried through untouched (not premultiplied).
    grayscale: the source had one colour channel (pixels hold it replicated three times).
    bit_depth: 8 or 16, per channel of the source.
    format: Pillow format name of the source ("JPEG", "PNG", "TIFF", "WEBP", "BMP").
    exif: the source EXIF block with orientation reset to 1, ready to write, or None.
    icc_profile: the source's embedded ICC profile bytes, or None (sRGB assumed).
    source: the path read, or "<stdin>" / "<bytes>".
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool
    bit_depth: int
    format: str
    exif: bytes | None
    icc_profile: bytes | None
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def normalize_format(name: str) -> str:
    """ "png", "JPG", ".tiff", "JPEG" ... -> the Pillow format name; ValueError if unknown."""
    key = name.strip().lower().lstrip(".")
    if key in _NAME_FORMATS:
        return _NAME_FORMATS[key]
    if name.upper() in WRITE_FORMATS:
        return name.upper()
    raise ValueError(f"unknown image format {name!r} (choose one of: png, jpeg, tiff, webp, bmp)")


def output_format_for(path_or_name: str | os.PathLike | None, pic: Picture) -> str:
    """The format to write for a destination: from its suffix if known, else the source's
    format when lumen can write it (a multi-picture JPEG gives JPEG), else PNG.

    Alpha is never dropped by this choice: an image with alpha whose suffix is unknown goes to
    PNG when the source format cannot hold alpha. (An explicit ``.jpg`` still gives JPEG, and
    ``write_image`` then drops alpha with a warning.)
    """
    if path_or_name is not None:
        suffix = Path(os.fspath(path_or_name)).suffix.lower()
        if suffix in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[suffix]
    fmt = _DEFAULT_FOR.get(pic.format, pic.format)
    if fmt not in WRITE_FORMATS:
        return "PNG"
    if pic.alpha is not None and fmt not in ALPHA_FORMATS:
        return "PNG"
    return fmt
