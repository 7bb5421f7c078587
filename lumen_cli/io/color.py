"""ICC colour management: bring any embedded profile to sRGB for processing.

Policy (documented in the README): pixels are processed in sRGB; on write lumen embeds an sRGB
profile when the source carried a profile (wide-gamut colours outside sRGB are clipped), and
writes no profile when the source had none (sRGB assumed, as every viewer does).

* 8-bit images go through LittleCMS (``PIL.ImageCms``), relative colorimetric intent.
* 16-bit images: ImageCms has no 16-bit RGB mode, so for matrix/TRC profiles (Adobe RGB,
  Display P3, ProPhoto, gray gamma profiles: nearly all camera/editor profiles) the same
  transform LittleCMS would apply (TRC -> D50 XYZ -> sRGB) runs here in float32, keeping the full
  16-bit precision. Other (LUT-based) profiles fall back to an 8-bit ImageCms transform plus the
  residual below 1/255 added back, so gradations are kept but colour accuracy is 8-bit.
"""

from __future__ import annotations

import struct
import warnings
from functools import lru_cache

import numpy as np

_ROWS = 256  # rows per chunk: keeps float temporaries small for 24 MP images


class ColorWarning(UserWarning):
    """A colour profile could not be used; the image is treated as sRGB."""


@lru_cache(maxsize=1)
def srgb_profile_bytes() -> bytes:
    """The ICC profile lumen embeds in outputs (LittleCMS's built-in sRGB)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def profile_colorspace(icc: bytes) -> str:
    """'RGB', 'GRAY', 'CMYK', ... from the ICC header ('' if unreadable or not a profile)."""
    space = icc[16:20].decode("ascii", "replace").strip() if len(icc) >= 20 else ""
    return space if space.isascii() and space.isalnum() else ""


def is_srgb(icc: bytes) -> bool:
    """True when the profile describes sRGB (by its description), so no conversion is needed."""
    from PIL import ImageCms

    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(_bytes_io(icc)))
    except Exception:  # unreadable: the caller reports it
        return False
    return "srgb" in desc.lower().replace(" ", "")


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


def cms_to_srgb(im, icc: bytes):
    """PIL image in mode L / RGB / CMYK with profile ``icc`` -> 8-bit sRGB ("RGB") image.

    Returns None (with a ColorWarning) if LittleCMS cannot use the profile.
    """
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(_bytes_io(icc))
        dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        return ImageCms.profileToProfile(
            im,
            src,
            dst,
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode="RGB",
        )
    except Exception as exc:
        warnings.warn(
            f"ICC profile not usable ({exc}); treating colours as sRGB", ColorWarning, stacklevel=2
        )
        return None


# --- minimal ICC reader for matrix/TRC profiles (used for 16-bit data) ----------------------


def _s15(b: bytes) -> float:
    return struct.unpack(">i", b)[0] / 65536.0


def _tags(icc: bytes) -> dict[str, bytes]:
    (count,) = struct.unpack(">I", icc[128:132])
    out = {}
    for i in range(count):
        sig, off, size = struct.unpack(">4sII", icc[132 + 12 * i : 144 + 12 * i])
        out[sig.decode("latin-1")] = icc[off : off + size]
    return out


def _xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ ":
        raise ValueError("colorant is not an XYZ tag")
    return np.array([_s15(tag[8 + 4 * i : 12 + 4 * i]) for i in range(3)])


def _trc_lut(tag: bytes, size: int) -> np.ndarray:
    """Tone curve sampled at ``size`` evenly spaced inputs in [0, 1] -> float32 LUT."""
    x = np.linspace(0.0, 1.0, size)
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack(">I", tag[8:12])
        if n == 0:
            y = x
        elif n == 1:
            y = x ** (struct.unpack(">H", tag[12:14])[0] / 256.0)
        else:
            table = np.frombuffer(tag[12 : 12 + 2 * n], dtype=">u2") / 65535.0
            y = np.interp(x, np.linspace(0.0, 1.0, n), table)
    elif kind == b"para":
        (ftype,) = struct.unpack(">H", tag[8:10])
        nparams = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}[ftype]
        p = [_s15(tag[12 + 4 * i : 16 + 4 * i]) for i in range(nparams)] + [0.0] * 7
        g, a, b, c, d, e, f = p[:7]
        if ftype == 0:
            y = x**g
        elif ftype in (1, 2):
            lin = a * x + b
            y = np.where(lin >= 0, np.maximum(lin, 0) ** g, 0.0) + (c if ftype == 2 else 0.0)
        else:
            high = np.maximum(a * x + b, 0) ** g + (e if ftype == 4 else 0.0)
            y = np.where(x >= d, high, c * x + f)
    else:
        raise ValueError(f"unsupported tone curve type {kind!r}")
    return np.clip(y, 0.0, None).astype(np.float32)


@lru_cache(maxsize=1)
def _srgb_from_xyz() -> np.ndarray:
    """3x3 matrix D50 PCS XYZ -> linear sRGB, from LittleCMS's own sRGB colorants."""
    t = _tags(srgb_profile_bytes())
    m = np.stack([_xyz(t["rXYZ"]), _xyz(t["gXYZ"]), _xyz(t["bXYZ"])], axis=1)
    return np.linalg.inv(m)


def _srgb_encode(lin: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB gamma-encoded, float32, in place where possible."""
    np.clip(lin, 0.0, 1.0, out=lin)
    low = lin <= 0.0031308
    enc = np.power(lin, np.float32(1 / 2.4), dtype=np.float32)
    enc *= np.float32(1.055)
    enc -= np.float32(0.055)
    enc[low] = lin[low] * np.float32(12.92)
    return enc


def matrix_trc_to_srgb(values: np.ndarray, icc: bytes, out: np.ndarray) -> bool:
    """Convert integer ``values`` (H, W, 3) RGB or (H, W) gray, uint8/uint16, described by a
    matrix/TRC (or gray TRC) profile, to sRGB float32 [0, 1] written into ``out`` (H, W, 3).

    Returns False (leaving ``out`` untouched) if the profile is not of that kind.
    """
    try:
        tags = _tags(icc)
        size = 65536 if values.dtype == np.uint16 else 256
        if values.ndim == 2:
            luts = [_trc_lut(tags["kTRC"], size)]
            mat = None
        else:
            luts = [_trc_lut(tags[k], size) for k in ("rTRC", "gTRC", "bTRC")]
            src = np.stack([_xyz(tags[k]) for k in ("rXYZ", "gXYZ", "bXYZ")], axis=1)
            mat = (_srgb_from_xyz() @ src).T.astype(np.float32)
    except (KeyError, ValueError, struct.error):
        return False
    for r0 in range(0, values.shape[0], _ROWS):
        block = values[r0 : r0 + _ROWS]
        if mat is None:
            enc = _srgb_encode(luts[0][block])
            out[r0 : r0 + _ROWS] = enc[..., None]
        else:
            lin = np.stack([luts[c][block[..., c]] for c in range(3)], axis=-1)
            out[r0 : r0 + _ROWS] = _srgb_encode(lin @ mat)
    return True
