"""EXIF: orientation (applied on read, reset to 1 on write) and a writable copy of the block."""

from __future__ import annotations

import warnings

import numpy as np

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
# IFD0 tags worth keeping when the "EXIF" is really a TIFF file's own directory.
_DESCRIPTIVE = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)


def orientation_and_exif(im) -> tuple[int, bytes | None]:
    """(EXIF orientation 1-8, EXIF bytes with orientation reset to 1 or None) of a PIL image.

    For TIFF sources only descriptive tags and the Exif/GPS sub-directories are kept: the
    TIFF directory's structural tags (strip offsets, sizes, ...) must not be copied.
    """
    if im.format == "PNG" and "exif" not in im.info:
        # Pillow would decode the whole image looking for an eXIf chunk after the pixel data;
        # lumen (like the PNG spec's advice to writers) only looks before it.
        return 1, None
    try:
        exif = im.getexif()
    except Exception as exc:  # malformed EXIF should not make a readable image fail
        warnings.warn(f"{exc}: EXIF ignored", UserWarning, stacklevel=2)
        return 1, None
    orientation = exif.get(ORIENTATION, 1)
    if orientation not in range(1, 9):
        orientation = 1
    if im.format == "TIFF":
        exif = descriptive(exif)
    if len(exif) == 0:
        return orientation, None
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    try:
        return orientation, exif.tobytes()
    except Exception as exc:
        warnings.warn(
            f"EXIF cannot be re-encoded ({exc}); it will not be copied", UserWarning, stacklevel=2
        )
        return orientation, None


def descriptive(exif):
    """A new ``Image.Exif`` with only the descriptive IFD0 tags and the Exif/GPS directories of
    ``exif`` (what is worth copying from a TIFF-structured file's own directory)."""
    from PIL import Image

    clean = Image.Exif()
    for tag in _DESCRIPTIVE:
        if tag in exif:
            clean[tag] = exif[tag]
    for ifd in (EXIF_IFD, GPS_IFD):
        sub = exif.get_ifd(ifd)
        if sub:
            clean[ifd] = dict(sub)
    return clean


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W, ...) array stored with EXIF ``orientation`` upright (a view, no copy).

    Same mapping as ``PIL.ImageOps.exif_transpose``.
    """
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:  # transpose
        return a.swapaxes(0, 1)
    if orientation == 6:  # rotate 90 degrees clockwise
        return a.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:  # transverse
        return a.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:  # rotate 90 degrees counter-clockwise
        return a.swapaxes(0, 1)[::-1]
    return a
