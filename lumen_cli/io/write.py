"""write_image: result pixels + the source Picture's metadata -> an encoded file, atomically.

Pixels are float [0, 1] sRGB; they are scaled, rounded (np.rint) and clipped to 8 or 16 bits in
row blocks, so a 24 MP image needs no full-size float temporary. EXIF (orientation 1) is
copied; an sRGB ICC profile is embedded when the source carried any profile (see color.py);
grayscale is written as one channel (Rec. 601 luma of the result, as Pillow's "L"); alpha is
written back unchanged. 16-bit RGB(A) goes through OpenCV (Pillow has no such mode), with the
PNG metadata chunks added here; 16-bit colour TIFFs are written by tifffile with EXIF and ICC
(io/tiff16.py; without tifffile, by OpenCV, which drops them).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lumen_cli import atomic
from lumen_cli.io import png, tiff16
from lumen_cli.io.color import srgb_profile_bytes
from lumen_cli.io.picture import (
    ALPHA_FORMATS,
    SIXTEEN_BIT_FORMATS,
    ImageWriteError,
    OutputExistsError,
    Picture,
    normalize_format,
    output_format_for,
)
from lumen_cli.ops.color import LUMA

_ROWS = 256
PNG_LEVEL = 4  # zlib level of 8-bit PNGs: much faster than 6, files a little larger (NOTES)
_LUMA = np.array(LUMA, dtype=np.float32)


def write_image(
    pic: Picture,
    pixels: np.ndarray,
    dest: str | os.PathLike | BinaryIO,
    *,
    format: str | None = None,
    quality: int = 95,
    bit_depth: int | None = None,
    grayscale: bool | None = None,
    overwrite: bool = True,
) -> None:
    """Encode ``pixels`` ((H, W, 3), (H, W, 1) or (H, W) float in [0, 1], sRGB) with ``pic``'s
    metadata and alpha, and write it to a path (atomically) or a binary stream (in one write).

    format: "png"/"jpeg"/"tiff"/"webp"/"bmp"; None: from the destination suffix, else the
    source format. bit_depth: None keeps the source depth where the format allows (16 only for
    PNG/TIFF). grayscale: None keeps the source's; True writes one channel.
    Raises ImageWriteError (naming the destination) on any failure; no partial file remains.
    """
    stream = hasattr(dest, "write")
    path = None if stream else Path(os.fspath(dest))
    name = "<stdout>" if stream else str(path)
    try:
        fmt = normalize_format(format) if format else output_format_for(path, pic)
    except ValueError as exc:
        raise ImageWriteError(f"{name}: {exc}") from None
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ImageWriteError(f"{name}: pixels must be (H, W, 3) or (H, W), got {pixels.shape}")
    gray = pic.grayscale if grayscale is None else grayscale
    gray = gray or (pixels.ndim == 2 and grayscale is not False)
    depth = bit_depth or (pic.bit_depth if fmt in SIXTEEN_BIT_FORMATS else 8)
    if depth not in (8, 16) or (depth == 16 and fmt not in SIXTEEN_BIT_FORMATS):
        raise ImageWriteError(f"{name}: {fmt} cannot be written with {depth} bits per channel")
    alpha = pic.alpha
    if alpha is not None and alpha.shape != pixels.shape[:2]:
        raise ImageWriteError(
            f"{name}: alpha is {alpha.shape} but pixels are {pixels.shape[:2]}; sizes must match"
        )
    if alpha is not None and fmt not in ALPHA_FORMATS:
        warnings.warn(
            f"{name}: {fmt} cannot hold transparency; alpha dropped", UserWarning, stacklevel=2
        )
        alpha = None
    if path is not None and not overwrite and path.exists():
        raise OutputExistsError(f"{name}: already exists (use --overwrite to replace it)")
    try:
        data = _encode(pixels, alpha, gray, fmt, depth, quality, pic)
    except ImageWriteError:
        raise
    except Exception as exc:
        raise ImageWriteError(f"{name}: cannot encode {fmt}: {exc}") from exc
    try:
        if stream:
            dest.write(data)
            dest.flush()
        else:
            atomic.write_bytes(path, data, overwrite=overwrite)
    except ImageWriteError:
        raise
    except atomic.DestinationExistsError:
        raise OutputExistsError(f"{name}: already exists (use --overwrite to replace it)") from None
    except OSError as exc:
        raise ImageWriteError(f"{name}: cannot write: {exc.strerror or exc}") from exc


def _quantize(pixels, alpha, gray, depth, bgr) -> np.ndarray:
    """Float [0, 1] -> uint8/uint16 (H, W[, C]) with channels gray|gray+A|RGB|RGBA (or BGR(A))."""
    h, w = pixels.shape[:2]
    dtype, top = (np.uint16, 65535.0) if depth == 16 else (np.uint8, 255.0)
    colors = 1 if gray else 3
    channels = colors + (alpha is not None)
    out = np.empty((h, w, channels), dtype=dtype)
    order = slice(2, None, -1) if bgr and colors == 3 else slice(0, colors)
    for r0 in range(0, h, _ROWS):
        r1 = min(r0 + _ROWS, h)
        blk = pixels[r0:r1]
        if gray and blk.ndim == 3:
            blk = blk.astype(np.float32, copy=False) @ _LUMA
        elif not gray and blk.ndim == 2:
            blk = np.repeat(blk[..., None], 3, axis=2)
        if blk.ndim == 2:
            blk = blk[..., None]
        out[r0:r1, :, order] = _scale(blk, top)
        if alpha is not None:
            out[r0:r1, :, colors] = _scale(alpha[r0:r1], top)
    return out[..., 0] if channels == 1 else out


def _scale(x: np.ndarray, top: float) -> np.ndarray:
    y = np.multiply(x, np.float32(top), dtype=np.float32)
    np.nan_to_num(y, copy=False, nan=0.0)
    np.clip(y, 0.0, top, out=y)
    return np.rint(y, out=y)


def _encode(pixels, alpha, gray, fmt, depth, quality, pic: Picture) -> bytes:
    icc = srgb_profile_bytes() if pic.icc_profile and not gray else None
    exif = pic.exif
    if depth == 16:
        return _encode16(pixels, alpha, gray, fmt, icc, exif)
    from PIL import Image

    im = Image.fromarray(_quantize(pixels, alpha, gray, 8, bgr=False))
    opts: dict = {}
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        if icc:
            opts["icc_profile"] = icc
        if exif:
            opts["exif"] = exif
    if fmt == "JPEG":
        opts.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        opts.update(quality=int(quality))
    elif fmt == "TIFF":
        opts.update(compression="tiff_deflate")
    elif fmt == "PNG":
        opts.update(compress_level=PNG_LEVEL)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **opts)
    return buf.getvalue()


def _encode16(pixels, alpha, gray, fmt, icc, exif) -> bytes:
    import cv2

    if gray and alpha is not None and fmt == "PNG":  # neither Pillow nor OpenCV writes LA16
        return png.encode16(_quantize(pixels, alpha, True, 16, bgr=False), icc, exif)
    if gray and alpha is not None:  # 16-bit gray+alpha TIFF: written as RGBA (gray replicated)
        gray = False
    arr = _quantize(pixels, alpha, gray, 16, bgr=True)
    if fmt == "TIFF" and arr.ndim == 2:
        from PIL import Image

        buf = io.BytesIO()
        opts = {"exif": exif} if exif else {}
        Image.fromarray(arr).save(buf, format="TIFF", compression="tiff_deflate", **opts)
        return buf.getvalue()
    if fmt == "TIFF" and tiff16.available():  # keeps the ICC profile and EXIF
        rgb = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
        return tiff16.encode(rgb, icc, exif)
    ok, enc = cv2.imencode(".png" if fmt == "PNG" else ".tif", arr)
    if not ok:
        raise ImageWriteError(f"OpenCV could not encode a 16-bit {fmt}")
    data = enc.tobytes()
    return png.add_metadata(data, icc, exif) if fmt == "PNG" else data
