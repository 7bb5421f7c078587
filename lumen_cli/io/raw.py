"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, PEF, ...) through rawpy (LibRaw).

Installed with the optional extra ``raw`` (``pip install "lumen-cli[raw]"``). A RAW file is
developed once, without any brightening, so that the enhancement method decides the exposure:

1. demosaic with the camera's as-shot white balance (``use_camera_wb``), in the camera's
   orientation, LibRaw's default AHD interpolation;
2. the camera colour matrix to linear sRGB primaries, 16 bits per channel, gamma 1 and
   ``no_auto_bright`` (LibRaw's automatic brightening, which stretches the histogram, is off;
   the white level maps to 1.0, so a dark frame stays dark);
3. the sRGB transfer curve, giving float32 [0, 1] pixels like any other input.

The Picture says ``bit_depth=16`` and ``format="RAW"``, so the default output is a 16-bit PNG.
EXIF (camera, lens, capture date, exposure) is taken from the file's TIFF directory when it has
one (DNG, NEF, CR2, ARW, PEF...), else from the embedded preview JPEG, with orientation reset
to 1 (the developed pixels are already upright).
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lumen_cli.io.picture import Picture

#: Suffixes (lowercase) routed to rawpy.
RAW_SUFFIXES: frozenset[str] = frozenset(
    {
        ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
        ".orf", ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mef",
        ".mos", ".mrw", ".raw", ".rwl",
    }
)  # fmt: skip

EXTRA_HINT = 'pip install "lumen-cli[raw]"'


def is_raw_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in RAW_SUFFIXES


def _rawpy(name: str):
    from lumen_cli.io.picture import ImageReadError

    try:
        import rawpy
    except ImportError:
        raise ImageReadError(
            f"{name}: camera RAW needs the optional extra 'raw' (rawpy, LibRaw): {EXTRA_HINT}"
        ) from None
    return rawpy


def read_raw(src: str | bytes, name: str, max_pixels: int | None) -> Picture:
    """Develop a RAW file (a path or its bytes) into a Picture (see the module docstring)."""
    rawpy = _rawpy(name)
    from lumen_cli.io.color import _srgb_encode
    from lumen_cli.io.picture import ImageReadError
    from lumen_cli.io.picture import Picture as _Picture

    handle = io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src
    try:
        raw = rawpy.imread(handle)
    except (rawpy.LibRawError, ValueError) as exc:
        raise ImageReadError(f"{name}: not a RAW file LibRaw can read ({exc})") from None
    with raw:
        w, h = raw.sizes.width, raw.sizes.height
        if max_pixels is not None and w * h > max_pixels:
            raise ImageReadError(
                f"{name}: {w}x{h} is {w * h / 1e6:.1f} megapixels, over the limit of "
                f"{max_pixels / 1e6:.1f}; use --max-pixels {w * h} (or more) to read it"
            )
        rgb16 = raw.postprocess(
            use_camera_wb=True,
            no_auto_bright=True,
            output_bps=16,
            gamma=(1.0, 1.0),
            output_color=rawpy.ColorSpace.sRGB,
        )
        thumb_exif = _thumb_exif(raw)
    lin = rgb16.astype(np.float32)
    lin *= np.float32(1 / 65535)
    pixels = _srgb_encode(lin)
    data = src if isinstance(src, (bytes, bytearray)) else None
    exif = _tiff_exif(name, data) or thumb_exif
    return _Picture(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        alpha=None,
        grayscale=False,
        bit_depth=16,
        format="RAW",
        exif=exif,
        icc_profile=None,
        source=name,
    )


def _clean(exif) -> bytes | None:
    """Descriptive IFD0 tags and the Exif/GPS directories of ``exif``, orientation 1."""
    from lumen_cli.io.exif import ORIENTATION, descriptive

    clean = descriptive(exif)
    if len(clean) == 0:
        return None
    clean[ORIENTATION] = 1
    return clean.tobytes()


def _tiff_exif(name: str, data: bytes | None) -> bytes | None:
    """EXIF of a TIFF-structured RAW (DNG, NEF, CR2, ARW, ...), or None."""
    from PIL import Image

    try:
        if data is None:
            with open(name, "rb") as f:
                data = f.read()
        if data[:4] not in (b"II*\x00", b"MM\x00*"):
            return None
        exif = Image.Exif()
        exif.load(bytes(data))
        return _clean(exif)
    except Exception:  # a maker's odd directory must not make a readable RAW fail
        return None


def _thumb_exif(raw) -> bytes | None:
    """EXIF of the embedded preview JPEG (CR3, RAF, ... keep theirs there), or None."""
    try:
        thumb = raw.extract_thumb()
    except Exception:
        return None
    if getattr(thumb.format, "name", "") != "JPEG":
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(bytes(thumb.data)), formats=["JPEG"]) as im:
            return _clean(im.getexif())
    except Exception:
        return None
