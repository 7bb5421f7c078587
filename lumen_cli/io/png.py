"""Small PNG helpers: header facts, adding iCCP/eXIf chunks to an encoded PNG (OpenCV cannot
write them), and a plain 16-bit encoder for gray+alpha (neither Pillow nor OpenCV writes it)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR colour types
GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6


def ihdr(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from the first bytes of a PNG file, or None if not a PNG."""
    if len(head) < 29 or not head.startswith(SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def metadata_chunks(icc: bytes | None, exif: bytes | None) -> bytes:
    """iCCP and eXIf chunks (EXIF given with or without the JPEG-style 'Exif\\0\\0' header)."""
    out = b""
    if icc:
        out += chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        if exif.startswith(b"Exif\x00\x00"):
            exif = exif[6:]
        out += chunk(b"eXIf", exif)
    return out


def add_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP/eXIf right after IHDR (before any image data, as the spec asks)."""
    extra = metadata_chunks(icc, exif)
    if not extra:
        return png
    end_ihdr = 8 + 8 + 13 + 4
    return png[:end_ihdr] + extra + png[end_ihdr:]


def encode16(a: np.ndarray, icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """Encode a uint16 (H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA
    array as a 16-bit PNG (filter 'Up' on every row, zlib level 6)."""
    if a.dtype != np.uint16:
        raise TypeError("encode16 needs a uint16 array")
    h, w = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    ctype = {1: GRAY, 2: GRAY_ALPHA, 3: RGB, 4: RGBA}[channels]
    rows = a.astype(">u2", copy=False).reshape(h, w * channels).view(np.uint8)
    filtered = np.empty((h, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # Up
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # wraps modulo 256, as PNG wants
    head = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)
    return (
        SIGNATURE
        + chunk(b"IHDR", head)
        + metadata_chunks(icc, exif)
        + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
