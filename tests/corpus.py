"""A generated corpus of bad and unusual input files, as a new user's folder might hold them.

``make_corpus(folder)`` writes every case and returns ``{file name: Case}``; ``Case.good`` says
whether lumen must enhance it (a result file appears) or must report it by name and go on.
Everything is tiny (at most 64x64 pixels) so a whole batch runs in seconds on one core.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Case:
    good: bool  # True: must be written; False: must be reported as failed, by name
    why: str


def _rgb(h: int, w: int, seed: int = 0, top: int = 70) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x[..., None] * 3 + y[..., None] * 2 + np.array([0, 10, 20])) % max(top, 1)
    return np.clip(base + rng.integers(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def _pil(arr, mode=None):
    from PIL import Image

    return Image.fromarray(arr, mode) if mode else Image.fromarray(arr)


def _save(im, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png(h=24, w=32, seed=0, **kw) -> bytes:
    return _save(_pil(_rgb(h, w, seed)), "PNG", **kw)


def _exif_jpeg(orientation: int) -> bytes:
    from PIL import Image

    ex = Image.Exif()
    ex[0x0112] = orientation
    return _save(_pil(_rgb(24, 40, orientation)), "JPEG", exif=ex.tobytes(), quality=90)


def _cv2(arr, ext: str) -> bytes:
    import cv2

    ok, enc = cv2.imencode(ext, arr)
    assert ok
    return enc.tobytes()


def _frames(fmt: str, **kw) -> bytes:
    ims = [_pil(_rgb(16, 16, s)) for s in range(3)]
    return _save(ims[0], fmt, save_all=True, append_images=ims[1:], **kw)


def _icc_srgb() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _flip_byte(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0xFF
    return bytes(b)


def _bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid PNG header announcing 10 gigapixels, with almost no data."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    head = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _cases() -> dict[str, tuple[Case, Callable[[], bytes]]]:
    from PIL import Image

    rgb = _rgb(24, 32)
    c: dict[str, tuple[Case, Callable[[], bytes]]] = {}

    def good(name, why, make):
        c[name] = (Case(True, why), make)

    def bad(name, why, make):
        c[name] = (Case(False, why), make)

    # -- unusual but valid: must be enhanced --------------------------------------------
    good("px1x1.png", "1x1 pixel", lambda: _png(1, 1))
    good("px2x2.png", "2x2 pixels", lambda: _png(2, 2))
    good("px1x50.png", "one row", lambda: _png(1, 50))
    good("px50x1.png", "one column", lambda: _png(50, 1))
    good("px3x64.png", "extreme aspect", lambda: _png(3, 64))
    good("jpeg1x1.jpg", "1x1 JPEG", lambda: _save(_pil(_rgb(1, 1)), "JPEG"))
    for o in range(2, 9):
        good(f"exif_orient{o}.jpg", f"EXIF orientation {o}", lambda o=o: _exif_jpeg(o))
    good("exif_orient99.jpg", "out-of-range orientation", lambda: _exif_jpeg(99))
    good("gray.png", "grayscale", lambda: _save(_pil(rgb[..., 0]), "PNG"))
    good("grayjpeg.jpg", "grayscale JPEG", lambda: _save(_pil(rgb[..., 0]), "JPEG"))
    good("gray_alpha.png", "gray + alpha", lambda: _save(_pil(rgb[..., :2], "LA"), "PNG"))
    good(
        "rgba.png",
        "RGBA",
        lambda: _save(_pil(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])), "PNG"),
    )
    good("palette.png", "palette", lambda: _save(_pil(rgb).convert("P"), "PNG"))
    good(
        "palette_trns.png",
        "palette with transparency",
        lambda: _save(_pil(rgb).convert("P"), "PNG", transparency=0),
    )
    good("bilevel.png", "1-bit", lambda: _save(_pil(rgb[..., 0]).convert("1"), "PNG"))
    good("rgb16.png", "16-bit RGB", lambda: _cv2(rgb.astype(np.uint16) * 257, ".png"))
    good("gray16.png", "16-bit gray", lambda: _cv2(rgb[..., 0].astype(np.uint16) * 257, ".png"))
    good("tiff16.tif", "16-bit TIFF", lambda: _cv2(rgb.astype(np.uint16) * 257, ".tif"))
    good("cmyk.jpg", "CMYK JPEG", lambda: _save(_pil(rgb).convert("CMYK"), "JPEG"))
    good("cmyk_tiff.tif", "CMYK TIFF", lambda: _save(_pil(rgb).convert("CMYK"), "TIFF"))
    good("apng.png", "APNG (frame 0, warned)", lambda: _frames("PNG"))
    good("animated.webp", "animated WebP (frame 0, warned)", lambda: _frames("WEBP"))
    good("pages.tif", "multi-page TIFF (page 0, warned)", lambda: _frames("TIFF"))
    good("icc_garbage.png", "garbage ICC", lambda: _png(icc_profile=os.urandom(300)))
    good("icc_truncated.png", "truncated ICC", lambda: _png(icc_profile=_icc_srgb()[:200]))
    good("plain.bmp", "BMP", lambda: _save(_pil(rgb), "BMP"))
    good(
        "alpha.webp",
        "lossless WebP with alpha",
        lambda: _save(_pil(rgb).convert("RGBA"), "WEBP", lossless=True),
    )
    good("progressive.jpg", "progressive JPEG", lambda: _save(_pil(rgb), "JPEG", progressive=True))
    good("black.png", "all black", lambda: _save(_pil(np.zeros((24, 32, 3), np.uint8)), "PNG"))
    good("white.png", "all white", lambda: _save(_pil(np.full((24, 32, 3), 255, np.uint8)), "PNG"))
    good("UPPER.PNG", "upper-case suffix", lambda: _png(seed=3))
    good("ñame é ü.png", "non-ASCII name with spaces", lambda: _png(seed=4))
    good("-dash.png", "name starting with a dash", lambda: _png(seed=5))
    good("png_named.jpg", "a PNG with a .jpg suffix", lambda: _png(seed=6))
    good("tiff_lzw.tif", "LZW TIFF", lambda: _save(_pil(rgb), "TIFF", compression="tiff_lzw"))
    good("big64.png", "the largest here, 64x64", lambda: _png(64, 64, seed=7))
    # -- bad: must be reported by name, the batch going on --------------------------------
    good_png = _png(seed=8)
    good_jpg = _save(_pil(rgb), "JPEG")
    bad("empty.png", "zero bytes", lambda: b"")
    bad("empty_webp.webp", "zero bytes", lambda: b"")
    bad("truncated.png", "half a PNG", lambda: good_png[: len(good_png) // 2])
    bad("truncated_jpeg.jpg", "half a JPEG", lambda: good_jpg[: len(good_jpg) // 2])
    bad("random.jpg", "random bytes", lambda: os.urandom(2000))
    bad("text.png", "a text file", lambda: b"hello, this is not an image\n" * 20)
    bad("bad_ihdr_crc.png", "IHDR checksum wrong", lambda: _flip_byte(good_png, 29))
    bad("soi_only.jpg", "JPEG marker then garbage", lambda: b"\xff\xd8\xff" + os.urandom(500))
    bad("float.tif", "32-bit float RGB TIFF", lambda: _cv2(rgb.astype(np.float32) / 255, ".tif"))
    bad("bomb.png", "10-gigapixel header", _bomb_png)
    bad("gif_named.png", "a GIF (not read)", lambda: _save(_pil(rgb).convert("P"), "GIF"))
    bad("truncated16.png", "half a 16-bit PNG", lambda: _cv2(rgb.astype(np.uint16), ".png")[:300])
    bad("html.webp", "an HTML page", lambda: b"<!doctype html><title>404</title>")
    del Image
    return c


def make_corpus(folder: str | os.PathLike) -> dict[str, Case]:
    """Write every case into ``folder`` (created); returns {file name: Case}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (case, make) in _cases().items():
        (folder / name).write_bytes(make())
        out[name] = case
    if hasattr(os, "symlink"):
        os.symlink(folder / "no-such-target.png", folder / "dangling.png")
        out["dangling.png"] = Case(False, "broken symbolic link (a warning, not a failure)")
    return out
