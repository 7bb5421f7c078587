"""HEIC / HEIF (phone photos) through pillow-heif, and AVIF through Pillow.

HEIC is installed with the optional extra ``heif`` (``pip install "lumen-cli[heif]"``), which
registers libheif's decoder with Pillow; the rest of the reading path (EXIF, ICC, grayscale,
alpha) is Pillow's, as for a JPEG. libheif applies the file's rotation and mirroring while
decoding and resets the EXIF orientation to 1, so lumen does not turn the picture again.
AVIF is read by Pillow itself when it was built with libavif (recent Pillow wheels are;
``PIL.features.check('avif')``).

An embedded ICC profile (iPhones write Display P3) is converted to sRGB as for any input; a
file that describes its colours only by an nclx box, without ICC, is read as sRGB.
lumen does not write HEIC: a HEIC input's result defaults to JPEG (EXIF kept), and
``--format`` or the output's suffix picks another format.
"""

from __future__ import annotations

import os

#: Suffixes (lowercase) of HEIF-family files.
HEIF_SUFFIXES: frozenset[str] = frozenset({".heic", ".heif", ".hif", ".avif"})
#: ISO-BMFF major brands of HEIF images (HEVC-coded and generic) and of AVIF.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

EXTRA_HINT = 'pip install "lumen-cli[heif]"'


def brand(head: bytes) -> str | None:
    """'HEIF' or 'AVIF' when ``head`` (the file's first 12+ bytes) is such a file, else None."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    major = head[8:12]
    if major in _AVIF_BRANDS:
        return "AVIF"
    if major in _HEIF_BRANDS:
        return "HEIF"
    return None


def pillow_formats(head: bytes, name: str) -> tuple[str, ...]:
    """The Pillow format names to try, beyond lumen's usual ones, for a file starting with
    ``head``; registers pillow-heif's opener when a HEIF file needs it. Raises ImageReadError
    naming the extra to install when the decoder is missing."""
    kind = brand(head)
    if kind is None and os.path.splitext(name)[1].lower() in HEIF_SUFFIXES:
        kind = "AVIF" if name.lower().endswith(".avif") else "HEIF"
    if kind is None:
        return ()
    from PIL import features

    from lumen_cli.io.picture import ImageReadError

    if kind == "AVIF" and features.check("avif"):
        return ("AVIF",)
    try:
        import pillow_heif
    except ImportError:
        raise ImageReadError(
            f"{name}: {kind} images need the optional extra 'heif' (pillow-heif): {EXTRA_HINT}"
        ) from None
    pillow_heif.register_heif_opener()
    return ("HEIF",)
