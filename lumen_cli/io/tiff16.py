"""16-bit colour TIFF with its metadata, through tifffile.

OpenCV writes 16-bit RGB(A) TIFFs but no ICC profile or EXIF, and Pillow has no 16-bit colour
mode. tifffile writes the pixels (deflate-compressed, RGB or RGBA with unassociated alpha),
the ICC profile (tag 34675) and the descriptive IFD0 tags of the EXIF block (camera make and
model, date, artist, copyright ...). tifffile does not write the pointers to the Exif and GPS
sub-directories itself, so placeholders (tags 34664 and 34852, which sort at the same place)
are written, the two directories are appended to the file as encoded by Pillow, and the
placeholders are turned into the real pointer tags (34665, 34853).
"""

from __future__ import annotations

import io
import struct

import numpy as np

_EXIF_IFD, _GPS_IFD, _ICC = 0x8769, 0x8825, 34675
_PLACEHOLDER = {_EXIF_IFD: _EXIF_IFD - 1, _GPS_IFD: _GPS_IFD - 1}
_ASCII_IFD0 = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)


def available() -> bool:
    try:
        import tifffile  # noqa: F401
    except ImportError:
        return False
    return True


def encode(rgb: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    """(H, W, 3) RGB or (H, W, 4) RGBA uint16 -> TIFF bytes carrying ``icc`` and ``exif``."""
    import tifffile
    from PIL import Image

    ex = Image.Exif()
    if exif:
        ex.load(exif)
    subs = {tag: dict(ex.get_ifd(tag)) for tag in (_EXIF_IFD, _GPS_IFD)}
    subs = {tag: d for tag, d in subs.items() if d}
    tags = [(_PLACEHOLDER[tag], "I", 1, 0, True) for tag in subs]
    if icc:
        tags.append((_ICC, "B", len(icc), icc, True))
    for tag in _ASCII_IFD0:
        if isinstance(ex.get(tag), str):
            tags.append((tag, "s", 0, ex[tag], True))
    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        np.ascontiguousarray(rgb),
        photometric="rgb",
        extrasamples=("unassalpha",) if rgb.shape[-1] == 4 else None,
        compression="zlib",
        metadata=None,
        bigtiff=False,
        byteorder="<",
        extratags=tags,
    )
    data = bytearray(buf.getvalue())
    if subs:
        _link_subdirectories(data, subs)
    return bytes(data)


def _link_subdirectories(data: bytearray, subs: dict[int, dict]) -> None:
    """Append each sub-directory and point its placeholder tag at it (little-endian TIFF)."""
    import tifffile
    from PIL import TiffImagePlugin

    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tf:
        where = {tag: tf.pages[0].tags[_PLACEHOLDER[tag]].valueoffset for tag in subs}
    for tag, values in subs.items():
        if len(data) % 2:
            data += b"\0"
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II", group=tag)
        for k, v in values.items():
            ifd[k] = v
        offset = len(data)
        data += ifd.tobytes(offset)
        entry = where[tag] - 8  # tag (2), type (2), count (4), then the value
        data[entry : entry + 2] = struct.pack("<H", tag)
        data[where[tag] : where[tag] + 4] = struct.pack("<I", offset)
