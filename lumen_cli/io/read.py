"""read_image: any supported file or byte string -> Picture (float32 sRGB, upright).

Pillow parses every header (format, size, EXIF, ICC) and decodes 8-bit data; OpenCV decodes
16-bit PNG/TIFF, which Pillow silently truncates to 8 bits for RGB(A) (python-pillow#1888).
The bit depth is decided from the header, never from the pixel values.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from functools import cache

import numpy as np

from lumen_cli.io import color, heif, png, raw
from lumen_cli.io.exif import apply_orientation, orientation_and_exif
from lumen_cli.io.picture import DEFAULT_MAX_PIXELS, READ_FORMATS, ImageReadError, Picture

# OpenCV refuses images over 2**30 pixels by default; lumen's own guard (below) decides instead.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**40))

_OPEN_LOCK = threading.Lock()
_LUT8 = np.arange(256, dtype=np.float32) / np.float32(255)
_LUT16 = np.arange(65536, dtype=np.float32) / np.float32(65535)


def read_image(
    src: str | os.PathLike | bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Picture:
    """Read an image file (or its bytes, e.g. stdin) into a Picture.

    Raises ImageReadError, naming the file, when it is missing, not an image, corrupt,
    truncated, or larger than ``max_pixels`` (None: no limit).
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        name, data, fp = "<stdin>", bytes(src), io.BytesIO(bytes(src))
    else:
        name = os.fspath(src)
        data, fp = None, name
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return _read(fp, name, data, max_pixels)
    finally:
        _warn_named(caught, name)


def _warn_named(caught, name: str) -> None:
    """Re-issue the warnings of one read, each naming the file (once per message)."""
    seen = set()
    for w in caught:
        msg = str(w.message).strip()
        if not msg.startswith(name):
            msg = f"{name}: {msg}"
        if msg not in seen:
            seen.add(msg)
            warnings.warn(msg, w.category, stacklevel=3)


def _read(fp, name: str, data: bytes | None, max_pixels: int | None) -> Picture:
    try:
        if data is None and raw.is_raw_name(name):
            return raw.read_raw(name, name, max_pixels)
        extra = heif.pillow_formats(data[:32] if data is not None else _head(name), name)
        im = _open(fp, name, max_pixels, extra)
        with im:
            return _decode(im, name, data)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a folder, not an image") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except MemoryError:
        raise ImageReadError(f"{name}: not enough memory to decode this image") from None
    except Exception as exc:  # Pillow/libjpeg/libpng report corruption in many ways
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            raise ImageReadError(f"{name}: file is truncated or cut off ({reason})") from exc
        raise ImageReadError(f"{name}: corrupt or unreadable image ({reason})") from exc


def _open(fp, name: str, max_pixels: int | None, extra: tuple[str, ...] = ()):
    """Image.open with Pillow's global bomb limit lifted for this call only (lumen checks the
    header size itself, with its own limit and message)."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    with _OPEN_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        ImageFile.LOAD_TRUNCATED_IMAGES = False  # truncation must be an error, never grey rows
        try:
            im = Image.open(fp, formats=READ_FORMATS + extra)
        except UnidentifiedImageError:
            kind = _sniff(fp.getvalue()[:16] if isinstance(fp, io.BytesIO) else _head(name))
            if kind:
                raise ImageReadError(f"{name}: {kind}") from None
            raise ImageReadError(
                f"{name}: not an image, or not a format lumen reads (JPEG, PNG, TIFF, WebP, BMP;"
                " HEIC/AVIF with the 'heif' extra, camera RAW with the 'raw' extra)"
            ) from None
        finally:
            Image.MAX_IMAGE_PIXELS = old
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        im.close()
        raise ImageReadError(
            f"{name}: {width}x{height} is {_pixels(width * height)}, over the limit "
            f"of {_pixels(max_pixels)} (a guard against decompression bombs); "
            f"use --max-pixels {width * height} (or more) to read it"
        )
    return im


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels" if n >= 100_000 else f"{n} pixels"


def _sniff(head: bytes) -> str | None:
    """Why Pillow could not open a file whose signature is a format lumen reads, or None."""
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(png.SIGNATURE):
        return "corrupt PNG (its header is damaged: bad IHDR chunk or checksum)"
    if head.startswith(b"\xff\xd8\xff"):
        return "corrupt JPEG (its header is damaged)"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return (
            "a TIFF lumen cannot decode (32-bit float or another unusual sample format, or "
            "a damaged header); save it as an 8- or 16-bit integer TIFF or PNG"
        )
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "corrupt or unsupported WebP"
    if head[:2] == b"BM":
        return "corrupt or unsupported BMP"
    return None


def _warn_frames(im, name: str) -> None:
    """Animations (WebP, APNG) and multi-page TIFFs: lumen reads only the first frame."""
    if im.format == "MPO":  # a phone's JPEG with a depth map or preview: frame 0 is the photo
        return
    try:
        n = int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # counting frames walks the file; a damaged tail is not this check's job
        return
    if n > 1:
        what = "pages" if im.format == "TIFF" else "frames (an animation)"
        warnings.warn(
            f"{name}: has {n} {what}; only the first is enhanced", UserWarning, stacklevel=2
        )


def _is_16bit(im, name: str, data: bytes | None) -> bool:
    if im.format == "PNG":
        head = data[:32] if data is not None else _head(name)
        info = png.ihdr(head)
        return info is not None and info[0] == 16
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        photometric = im.tag_v2.get(262, 2)
        return 16 in tuple(bits) and photometric in (1, 2)
    return False


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(32)


def _decode(im, name: str, data: bytes | None) -> Picture:
    _warn_frames(im, name)
    orientation, exif = orientation_and_exif(im)
    icc = im.info.get("icc_profile") or None
    if _is_16bit(im, name, data):
        values, alpha, gray, pixels = _decode16(name, data, orientation, icc)
        depth = 16
    else:
        values, alpha, gray, pixels = _decode8(im, name, orientation, icc)
        depth = 16 if values is not None and values.dtype == np.uint16 else 8
    lut = _LUT16 if depth == 16 else _LUT8
    if pixels is None:
        if gray:
            pixels = np.empty(values.shape[:2] + (3,), dtype=np.float32)
            pixels[...] = lut[values][..., None]
        else:
            pixels = lut[values]
    return Picture(
        pixels=pixels,
        alpha=None if alpha is None else lut[alpha],
        grayscale=gray,
        bit_depth=depth,
        format=im.format,
        exif=exif,
        icc_profile=icc,
        source=name,
    )


def _decode16(name, data, orientation, icc):
    """16-bit PNG/TIFF via OpenCV -> (values, alpha, grayscale, pixels-or-None), upright."""
    import cv2

    buf = np.frombuffer(data, np.uint8) if data is not None else np.fromfile(name, np.uint8)
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        raise ImageReadError(f"{name}: corrupt or truncated 16-bit image (OpenCV cannot decode it)")
    fmt = "PNG" if png.ihdr(buf[:32].tobytes()) else "TIFF"
    if not _cv2_orients(fmt):
        arr = apply_orientation(arr, orientation)
    alpha = None
    if arr.ndim == 2:
        values, gray = arr, True
    elif arr.shape[2] == 2:
        values, alpha, gray = arr[..., 0], arr[..., 1], True
    else:
        values, gray = arr[..., 2::-1], False  # BGR(A) -> RGB
        if arr.shape[2] == 4:
            alpha = arr[..., 3]
        if _looks_gray(name, data):
            values, gray = arr[..., 0], True
    return values, alpha, gray, _icc16(values, icc, gray)


@cache
def _cv2_orients(fmt: str) -> bool:
    """Whether this OpenCV applies EXIF orientation itself under IMREAD_UNCHANGED for ``fmt``
    (OpenCV 5 does for TIFF; 4.x documents that it does not). Probed once with a 2x1 image."""
    import cv2
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: a 2x1 image becomes 1x2
    probe = io.BytesIO()
    Image.fromarray(np.zeros((1, 2), np.uint16)).save(probe, format=fmt, exif=exif.tobytes())
    arr = cv2.imdecode(np.frombuffer(probe.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    return arr is not None and arr.shape[:2] == (2, 1)


def _looks_gray(name, data) -> bool:
    """A gray+alpha PNG comes out of OpenCV as BGRA: the header says it was gray."""
    head = data[:32] if data is not None else _head(name)
    info = png.ihdr(head)
    return info is not None and info[1] == png.GRAY_ALPHA


def _icc16(values: np.ndarray, icc: bytes | None, gray: bool) -> np.ndarray | None:
    """sRGB float pixels for 16-bit data with a non-sRGB profile, else None (no conversion)."""
    space = "GRAY" if gray else "RGB"
    if not icc or color.is_srgb(icc):
        return None
    if color.profile_colorspace(icc) != space:
        warnings.warn(
            f"ICC profile is not a usable {space} profile; colours treated as sRGB",
            color.ColorWarning,
            stacklevel=2,
        )
        return None
    out = np.empty(values.shape[:2] + (3,), dtype=np.float32)
    if color.matrix_trc_to_srgb(values, icc, out):
        return out
    # LUT-based profile: 8-bit LittleCMS transform, plus the sub-1/255 residual added back.
    from PIL import Image

    q = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    conv = color.cms_to_srgb(Image.fromarray(np.ascontiguousarray(q)), icc)
    if conv is None:
        return None
    out[...] = _LUT8[np.asarray(conv)]
    resid = _LUT16[values] - _LUT8[q]
    out += resid[..., None] if gray else resid
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _decode8(im, name, orientation, icc):
    """Pillow decode (8-bit data, 16-bit gray "I;16") -> (values, alpha, gray, pixels-or-None)."""
    from PIL import Image

    im.load()  # raises on truncated/corrupt data (LOAD_TRUNCATED_IMAGES is off)
    if im.format == "TIFF" and 0x0112 not in im.tag_v2:
        orientation = 1  # recent Pillow turns TIFFs upright itself while loading
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in im.info
        mode = "RGBA" if transparent else "RGB"
        im = im.convert(mode)
    elif mode in ("RGBa", "La"):
        mode = mode[0] + "A" if mode == "La" else "RGBA"
        im = im.convert(mode)
    elif mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        im, mode = im.convert("RGB"), "RGB"
    elif mode == "F":
        raise ImageReadError(f"{name}: 32-bit float images are not supported")
    if mode.startswith("I"):  # "I;16", "I;16B", "I" (16-bit gray)
        values = np.asarray(im)
        if values.dtype != np.uint16:
            values = np.clip(values, 0, 65535).astype(np.uint16)
        values = apply_orientation(values, orientation)
        return values, None, True, _icc16(values, icc, True)
    alpha = None
    arr = None
    if mode in ("LA", "RGBA"):  # split with numpy: Pillow's LA -> L conversion premultiplies
        arr = np.asarray(im)
        alpha = apply_orientation(arr[..., -1], orientation)
        mode = mode[:-1]
        arr = arr[..., 0] if mode == "L" else arr[..., :3]
    if mode == "CMYK":
        converted = None
        if icc and color.profile_colorspace(icc) == "CMYK":
            converted = color.cms_to_srgb(im, icc)
        else:
            warnings.warn(
                f"{name}: CMYK image without an ICC profile: converted with a simple formula, "
                "colours may be off",
                color.ColorWarning,
                stacklevel=2,
            )
        im, mode = (converted if converted is not None else im.convert("RGB")), "RGB"
    elif icc and not color.is_srgb(icc):
        space = color.profile_colorspace(icc)
        if (space, mode) in (("RGB", "RGB"), ("GRAY", "L")):
            if arr is not None:
                im, arr = Image.fromarray(np.ascontiguousarray(arr)), None
            converted = color.cms_to_srgb(im, icc)
            if converted is not None:
                im = converted if mode == "RGB" else converted.getchannel(0)
        else:
            what = f"ICC profile for {space}" if space else "unreadable (damaged) ICC profile"
            warnings.warn(
                f"{name}: {what} on a {mode} image ignored; colours treated as sRGB",
                color.ColorWarning,
                stacklevel=2,
            )
    if mode not in ("L", "RGB"):
        raise ImageReadError(f"{name}: unsupported image mode {mode!r}")
    values = apply_orientation(np.asarray(im) if arr is None else arr, orientation)
    return values, alpha, mode == "L", None
