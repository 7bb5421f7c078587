"""Image I/O round trips: orientation, EXIF, ICC, bit depth, alpha, grayscale, palette, CMYK,
decompression bombs, atomic writes, corrupt/truncated input, stdin/stdout bytes."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from lumen_cli.io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    output_format_for,
    read_image,
    write_image,
)
from lumen_cli.io import png as pngmod

RNG = np.random.default_rng(0)

# --- helpers -------------------------------------------------------------------------------

# Adobe RGB (1998) colorants, D50-adapted as stored in its ICC profile, and its 563/256 gamma.
ADOBE = np.array(
    [[0.60974, 0.20528, 0.14919], [0.31111, 0.62567, 0.06322], [0.01947, 0.06087, 0.74457]]
)
ADOBE_GAMMA = 563 / 256


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def adobe_like_profile(gray: bool = False) -> bytes:
    """A minimal ICC v2 matrix/TRC RGB display profile with Adobe RGB primaries (or, with
    gray=True, a gray profile with a gamma 1.8 tone curve)."""

    def xyz(v):
        return b"XYZ \0\0\0\0" + b"".join(_s15(c) for c in v)

    desc_text = b"Adobe-like test RGB\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(desc_text)) + desc_text + b"\0" * 12
    desc += b"\0" * 67
    trc = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"
    cprt = b"text\0\0\0\0" + b"no copyright\0"
    if gray:
        gamma18 = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(1.8 * 256)) + b"\0\0"
        tags = [(b"desc", desc), (b"wtpt", xyz([0.9642, 1.0, 0.8249])), (b"kTRC", gamma18)]
    else:
        tags = [
            (b"desc", desc),
            (b"wtpt", xyz([0.9642, 1.0, 0.8249])),
            (b"rXYZ", xyz(ADOBE[:, 0])),
            (b"gXYZ", xyz(ADOBE[:, 1])),
            (b"bXYZ", xyz(ADOBE[:, 2])),
            (b"rTRC", trc),
            (b"gTRC", trc),
            (b"bTRC", trc),
            (b"cprt", cprt),
        ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    space = b"GRAY" if gray else b"RGB "
    header = struct.pack(">I4sI4s4s4s", size, b"\0\0\0\0", 0x02100000, b"mntr", space, b"XYZ ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
    header += _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def adobe_to_srgb(v: np.ndarray) -> np.ndarray:
    """Reference conversion in float64, written independently of lumen_cli.io.color."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cols = []
    (count,) = struct.unpack(">I", srgb[128:132])
    for i in range(count):
        sig, off, _ = struct.unpack(">4sII", srgb[132 + 12 * i : 144 + 12 * i])
        if sig in (b"rXYZ", b"gXYZ", b"bXYZ"):
            vals = struct.unpack(">3i", srgb[off + 8 : off + 20])
            cols.append((sig, np.array(vals) / 65536))
    m = np.stack([c for _, c in sorted(cols, key=lambda t: b"rgb".index(t[0][:1]))], axis=1)
    lin = (v.astype(np.float64) ** ADOBE_GAMMA) @ (np.linalg.inv(m) @ ADOBE).T
    lin = np.clip(lin, 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def exif_bytes(orientation: int = 1, make: str = "LumenCam") -> bytes:
    e = Image.Exif()
    e[0x010F] = make
    e[0x0112] = orientation
    return e.tobytes()


def cv2_write(path, arr: np.ndarray) -> None:
    """Write a uint16 RGB(A) array (RGB order) with OpenCV."""
    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    ok, enc = cv2.imencode(path.suffix, np.ascontiguousarray(arr))
    assert ok
    path.write_bytes(enc.tobytes())


def raw(path) -> np.ndarray:
    """File contents as stored (uint8/uint16, L/LA/RGB/RGBA order), no conversions: Pillow
    for 8-bit files (OpenCV premultiplies 8-bit RGBA TIFF), OpenCV for 16-bit ones."""
    a = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if a.dtype == np.uint8:
        return np.asarray(Image.open(path))
    if a.ndim == 3:
        a = a[..., [2, 1, 0, 3][: a.shape[2]]]
    if a.ndim == 3 and pngmod.ihdr(path.read_bytes()[:32]) == (16, pngmod.GRAY_ALPHA):
        a = a[..., [0, 3]]  # OpenCV expands gray+alpha PNG to 4 channels
    return a


def gradient(h=24, w=32, channels=3, top=255, dtype=np.uint8) -> np.ndarray:
    a = RNG.integers(0, top + 1, size=(h, w, channels))
    return a.astype(dtype)


# --- orientation and EXIF ------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(tmp_path, orientation):
    src = tmp_path / "o.png"
    a = gradient(6, 10)
    Image.fromarray(a).save(src, exif=exif_bytes(orientation))
    pic = read_image(src)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(src)))
    assert pic.pixels.shape == expected.shape
    assert np.array_equal(np.rint(pic.pixels * 255).astype(np.uint8), expected)
    out = tmp_path / "out.jpg"
    write_image(pic, pic.pixels, out)
    back = Image.open(out)
    assert back.size == (expected.shape[1], expected.shape[0])
    assert back.getexif()[0x0112] == 1
    assert back.getexif()[0x010F] == "LumenCam"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_16bit_png(tmp_path, orientation):
    a = gradient(5, 9, 3, 65535, np.uint16)
    src = tmp_path / "o16.png"
    src.write_bytes(pngmod.encode16(a, exif=exif_bytes(orientation)))
    pic = read_image(src)
    assert pic.bit_depth == 16
    upright = np.asarray(ImageOps.exif_transpose(Image.open(src).convert("RGB")))
    assert pic.pixels.shape == upright.shape
    high_bytes = np.rint(pic.pixels * 65535).astype(np.uint16) >> 8
    assert np.array_equal(high_bytes, upright)  # Pillow's 8-bit view keeps the high bytes


def test_tiff_source_exif_keeps_only_descriptive_tags(tmp_path):
    src = tmp_path / "src.tif"
    Image.fromarray(gradient(6, 10)).save(src, exif=exif_bytes(8, "TiffCam"))
    pic = read_image(src)
    assert pic.pixels.shape == (10, 6, 3)
    out = tmp_path / "out.jpg"
    write_image(pic, pic.pixels, out)
    exif = Image.open(out).getexif()
    assert exif[0x010F] == "TiffCam" and exif.get(0x0112, 1) == 1
    assert 0x0111 not in exif and 0x0100 not in exif  # no strip offsets / width copied


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_exif_copied_with_orientation_1(tmp_path, suffix):
    src = tmp_path / "src.jpg"
    Image.fromarray(gradient()).save(src, exif=exif_bytes(6, "CopyMe"), quality=95)
    pic = read_image(src)
    out = tmp_path / f"out{suffix}"
    write_image(pic, pic.pixels, out)
    exif = Image.open(out).getexif()
    assert exif[0x010F] == "CopyMe"
    assert exif.get(0x0112, 1) == 1
    assert Image.open(out).size == (24, 32)  # rotated once, on read only


# --- ICC -----------------------------------------------------------------------------------


def test_icc_8bit_converted_to_srgb_and_srgb_embedded(tmp_path):
    icc = adobe_like_profile()
    a = gradient(8, 8)
    src = tmp_path / "adobe.png"
    Image.fromarray(a).save(src, icc_profile=icc)
    pic = read_image(src)
    assert pic.icc_profile == icc
    expected = adobe_to_srgb(a / 255)
    assert np.abs(pic.pixels - expected).max() < 1.6 / 255  # LittleCMS, 8-bit
    assert np.abs(pic.pixels - a / 255).max() > 20 / 255  # a real conversion happened
    out = tmp_path / "out.png"
    write_image(pic, pic.pixels, out)
    embedded = Image.open(out).info["icc_profile"]
    desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(embedded)))
    assert "sRGB" in desc
    plain = tmp_path / "plain.png"
    Image.fromarray(a).save(plain)
    write_image(read_image(plain), read_image(plain).pixels, tmp_path / "p.png")
    assert "icc_profile" not in Image.open(tmp_path / "p.png").info


def test_icc_16bit_keeps_precision(tmp_path):
    icc = adobe_like_profile()
    a = gradient(8, 8, 3, 65535, np.uint16)
    a[0, :, :] = np.arange(8 * 3).reshape(8, 3) * 7  # very dark values: 16-bit precision matters
    src = tmp_path / "adobe16.png"
    src.write_bytes(pngmod.encode16(a, icc=icc))
    pic = read_image(src)
    assert pic.bit_depth == 16 and pic.pixels.dtype == np.float32
    expected = adobe_to_srgb(a / 65535)
    assert np.abs(pic.pixels - expected).max() < 2e-4
    out = tmp_path / "out16.png"
    write_image(pic, pic.pixels, out)
    assert raw(out).dtype == np.uint16
    assert "sRGB" in ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(Image.open(out).info["icc_profile"]))
    )


@pytest.mark.parametrize("depth", [8, 16])
def test_icc_gray_profile(tmp_path, depth):
    icc = adobe_like_profile(gray=True)
    top, dtype = (65535, np.uint16) if depth == 16 else (255, np.uint8)
    a = gradient(8, 8, 1, top, dtype)[..., 0]
    src = tmp_path / "g.png"
    Image.fromarray(a).save(src, icc_profile=icc)
    pic = read_image(src)
    assert pic.grayscale and pic.bit_depth == depth
    lin = (a / top) ** (round(1.8 * 256) / 256)
    expected = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    tol = 1.6 / 255 if depth == 8 else 2e-4
    assert np.abs(pic.pixels[..., 1] - expected).max() < tol
    write_image(pic, pic.pixels, tmp_path / "out.png")
    assert "icc_profile" not in Image.open(tmp_path / "out.png").info  # gray: no RGB profile


def test_exif_orientation_16bit_gray_tiff(tmp_path):
    a = gradient(5, 9, 1, 65535, np.uint16)[..., 0]
    src = tmp_path / "o16.tif"
    Image.fromarray(a).save(src, exif=exif_bytes(6))  # "I;16" TIFF, decoded by OpenCV
    pic = read_image(src)
    assert pic.bit_depth == 16 and pic.grayscale
    expected = np.rot90(a, k=-1)  # orientation 6: rotate 90 degrees clockwise
    assert np.array_equal(np.rint(pic.pixels[..., 0] * 65535).astype(np.uint16), expected)


@pytest.mark.parametrize("depth", [8, 16])
def test_broken_icc_profile_is_ignored_with_warning(tmp_path, depth):
    a = gradient(8, 8, 3, 65535 if depth == 16 else 255, np.uint16 if depth == 16 else np.uint8)
    src = tmp_path / "bad_icc.png"
    bad = b"RGB garbage, not a profile" * 8
    if depth == 16:
        src.write_bytes(pngmod.encode16(a, icc=bad))
    else:
        Image.fromarray(a).save(src, icc_profile=bad)
    with pytest.warns(UserWarning, match="ICC"):
        pic = read_image(src)
    assert np.array_equal(np.rint(pic.pixels * (2**depth - 1)), a)


# --- bit depth, alpha, grayscale -----------------------------------------------------------

CASES = [  # (suffix, depth, channels)
    (s, d, c) for s in (".png", ".tif") for d in (8, 16) for c in (1, 2, 3, 4)
]


def _make_source(path, depth, channels):
    top, dtype = (65535, np.uint16) if depth == 16 else (255, np.uint8)
    a = gradient(20, 28, channels, top, dtype)
    if channels == 1:
        a = a[..., 0]
    if depth == 8:
        Image.fromarray(a).save(path)
    elif path.suffix == ".png":
        path.write_bytes(pngmod.encode16(a))
    elif channels == 1:
        Image.fromarray(a).save(path)  # Pillow writes 16-bit gray TIFF ("I;16")
    elif channels == 2:
        pytest.skip("no writer for 16-bit gray+alpha TIFF test inputs")
    else:
        cv2_write(path, a)
    return a


@pytest.mark.parametrize("suffix,depth,channels", CASES)
def test_round_trip_same_depth_alpha_gray(tmp_path, suffix, depth, channels):
    src = tmp_path / f"src{suffix}"
    a = _make_source(src, depth, channels)
    pic = read_image(src)
    assert pic.bit_depth == depth
    assert pic.grayscale == (channels <= 2)
    assert (pic.alpha is not None) == (channels in (2, 4))
    assert pic.pixels.dtype == np.float32 and pic.pixels.shape == (20, 28, 3)
    out = tmp_path / f"out{suffix}"
    write_image(pic, pic.pixels, out)
    got = raw(out)
    assert got.dtype == a.dtype
    if channels == 2 and suffix == ".tif" and depth == 16:  # written as RGBA, gray replicated
        got = got[..., [0, 3]]
    assert np.array_equal(got, a)


def test_dark_16bit_not_mistaken_for_8bit(tmp_path):
    a = RNG.integers(0, 200, size=(16, 16, 3)).astype(np.uint16)  # max < 256
    src = tmp_path / "dark.png"
    src.write_bytes(pngmod.encode16(a))
    pic = read_image(src)
    assert pic.bit_depth == 16
    assert pic.pixels.max() < 200 / 65535 + 1e-6


def test_grayscale_stays_single_channel_without_tint(tmp_path):
    src = tmp_path / "g.jpg"
    Image.fromarray(gradient(16, 16, 1)[..., 0]).save(src, quality=95)
    pic = read_image(src)
    assert pic.grayscale and np.array_equal(pic.pixels[..., 0], pic.pixels[..., 2])
    tinted = pic.pixels.copy()
    tinted[..., 2] += 0.05  # a method that adds a blue cast
    out = tmp_path / "g_out.png"
    write_image(pic, tinted, out)
    back = Image.open(out)
    assert back.mode == "L"
    luma = tinted @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert np.abs(np.asarray(back) - np.rint(luma * 255)).max() <= 1


def test_16bit_grayscale_illumination_output(tmp_path):
    src = tmp_path / "c.png"
    Image.fromarray(gradient()).save(src)
    pic = read_image(src)
    illum = pic.pixels.max(axis=2)  # (H, W) map, as `decompose` writes it
    out = tmp_path / "L.png"
    write_image(pic, illum, out, bit_depth=16)
    got = raw(out)
    assert got.dtype == np.uint16 and got.ndim == 2
    assert np.array_equal(got, np.rint(illum * 65535).astype(np.uint16))


def test_8bit_la_alpha_untouched(tmp_path):
    a = gradient(12, 12, 2)
    src = tmp_path / "la.png"
    Image.fromarray(a).save(src)
    pic = read_image(src)
    out = tmp_path / "la_out.png"
    write_image(pic, np.clip(pic.pixels * 1.5, 0, 1), out)
    back = np.asarray(Image.open(out))
    assert Image.open(out).mode == "LA"
    assert np.array_equal(back[..., 1], a[..., 1])


def test_alpha_dropped_for_jpeg_with_warning(tmp_path):
    src = tmp_path / "rgba.png"
    Image.fromarray(gradient(8, 8, 4)).save(src)
    pic = read_image(src)
    assert output_format_for("x", pic) == "PNG"
    with pytest.warns(UserWarning, match="alpha"):
        write_image(pic, pic.pixels, tmp_path / "x.jpg")
    assert Image.open(tmp_path / "x.jpg").mode == "RGB"


# --- palette and CMYK ----------------------------------------------------------------------


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2, 0, 1, 2, 0, 1])
    src = tmp_path / "p.png"
    im.save(src, transparency=1)
    pic = read_image(src)
    assert not pic.grayscale and pic.alpha is not None
    assert np.array_equal(pic.pixels[0, 0], [1, 0, 0])
    assert np.array_equal(pic.pixels[0, 2], [0, 0, 1])
    assert pic.alpha[0, 1] == 0 and pic.alpha[0, 0] == 1


def test_cmyk_jpeg_adobe_inverted(tmp_path):
    im = Image.new("CMYK", (16, 8))
    im.paste((255, 0, 0, 0), (0, 0, 8, 8))  # pure cyan
    im.paste((0, 0, 0, 255), (8, 0, 16, 8))  # black
    src = tmp_path / "cmyk.jpg"
    im.save(src, quality=100)
    assert b"Adobe" in src.read_bytes()  # Pillow stores inverted (Photoshop-style) CMYK
    with pytest.warns(UserWarning, match="CMYK"):
        pic = read_image(src)
    assert np.abs(pic.pixels[4, 4] - [0, 1, 1]).max() < 0.03
    assert np.abs(pic.pixels[4, 12]).max() < 0.03
    write_image(pic, pic.pixels, tmp_path / "rgb.jpg")
    assert Image.open(tmp_path / "rgb.jpg").mode == "RGB"


# --- formats and quality -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_quality(tmp_path, fmt):
    src = tmp_path / "s.png"
    Image.fromarray(gradient(64, 64)).save(src)
    pic = read_image(src)
    write_image(pic, pic.pixels, tmp_path / "hi", format=fmt, quality=95)
    write_image(pic, pic.pixels, tmp_path / "lo", format=fmt, quality=20)
    assert Image.open(tmp_path / "hi").format == fmt.upper()
    assert (tmp_path / "hi").stat().st_size > (tmp_path / "lo").stat().st_size
    with pytest.raises(ImageWriteError, match="16 bits"):
        write_image(pic, pic.pixels, tmp_path / "x", format=fmt, bit_depth=16)


def test_output_format_for_and_extensions(tmp_path):
    src = tmp_path / "s.tif"
    Image.fromarray(gradient()).save(src)
    pic = read_image(src)
    assert output_format_for("a.JPEG", pic) == "JPEG"
    assert output_format_for("a.webp", pic) == "WEBP"
    assert output_format_for("noext", pic) == "TIFF"
    assert {".jpg", ".png", ".tiff", ".webp"} <= IMAGE_EXTENSIONS


# --- bombs, corrupt input, bytes -----------------------------------------------------------


def test_decompression_bomb_guard(tmp_path):
    src = tmp_path / "big.png"
    Image.new("RGB", (100, 60)).save(src)
    with pytest.raises(ImageReadError, match="--max-pixels") as err:
        read_image(src, max_pixels=5000)
    assert "big.png" in str(err.value)
    assert read_image(src, max_pixels=None).pixels.shape == (60, 100, 3)
    # A header claiming 4 gigapixels is refused before any decoding.
    head = pngmod.SIGNATURE + pngmod.chunk(
        b"IHDR", struct.pack(">IIBBBBB", 65536, 65536, 8, 2, 0, 0, 0)
    )
    bomb = head + pngmod.chunk(b"IDAT", zlib.compress(b"\0" * 100)) + pngmod.chunk(b"IEND", b"")
    old = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError, match="--max-pixels"):
        read_image(bomb)
    assert Image.MAX_IMAGE_PIXELS == old


@pytest.mark.parametrize("kind", ["jpeg", "png8", "png16"])
def test_truncated_file_fails_clearly(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # someone else turned it on
    src = tmp_path / f"cut_{kind}.img"
    buf = io.BytesIO()
    if kind == "png16":
        buf.write(pngmod.encode16(gradient(64, 64, 3, 65535, np.uint16)))
    else:
        Image.fromarray(gradient(64, 64)).save(buf, format="JPEG" if kind == "jpeg" else "PNG")
    data = buf.getvalue()
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as err:
        read_image(src)
    assert src.name in str(err.value)


def test_not_an_image_and_missing(tmp_path):
    junk = tmp_path / ".DS_Store"
    junk.write_bytes(b"\0\1\2 this is not an image at all" * 10)
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(junk)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(b"hello")


def test_read_bytes_and_write_stream_in_one_go(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(gradient()).save(buf, format="WEBP", lossless=True)
    pic = read_image(buf.getvalue())
    assert pic.format == "WEBP" and pic.source == "<stdin>"

    class Out(io.BytesIO):
        writes = 0

        def write(self, b):
            self.writes += 1
            return super().write(b)

    out = Out()
    write_image(pic, pic.pixels, out, format="png")
    assert out.writes == 1
    assert read_image(out.getvalue()).format == "PNG"


# --- atomic writes -------------------------------------------------------------------------


def test_overwrite_false_refuses(tmp_path):
    src = tmp_path / "s.png"
    Image.fromarray(gradient()).save(src)
    before = src.read_bytes()
    pic = read_image(src)
    with pytest.raises(ImageWriteError, match="overwrite"):
        write_image(pic, pic.pixels * 0.5, src, overwrite=False)
    assert src.read_bytes() == before
    write_image(pic, pic.pixels, tmp_path / "new.png", overwrite=False)
    assert (tmp_path / "new.png").exists()


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, exc):
    src = tmp_path / "s.png"
    Image.fromarray(gradient()).save(src)
    pic = read_image(src)
    dest = tmp_path / "out.png"
    dest.write_bytes(b"previous result")

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr("lumen_cli.io.write.os.replace", boom)
    with pytest.raises((ImageWriteError, KeyboardInterrupt)):
        write_image(pic, pic.pixels, dest)
    assert dest.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "s.png"]
    with pytest.raises(ImageWriteError, match="must be"):  # encode error: nothing written
        write_image(pic, pic.pixels[..., :2], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
