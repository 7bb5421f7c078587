"""HEIC/HEIF (pillow-heif) and camera RAW (rawpy) inputs: read, enhanced, EXIF kept, default
output format, and the message naming the extra when it is missing."""

import builtins

import numpy as np
import pytest
from PIL import Image

from lumen_cli.cli.app import main
from lumen_cli.io import ImageReadError, read_image
from lumen_cli.io.picture import default_output_suffix


def _exif():
    ex = Image.Exif()
    ex[0x010F] = "LumenCam"
    ex.get_ifd(0x8769)[36867] = "2024:01:02 03:04:05"
    return ex.tobytes()


def _gradient(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 2, y * 3, (x + y)], -1).astype(np.uint8)


@pytest.fixture
def heic(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "phone.heic"
    Image.fromarray(_gradient()).save(path, format="HEIF", quality=95, exif=_exif())
    return path


def _make_dng(path):
    """A minimal DNG (4095 white level, RGGB mosaic, as-shot neutral) written with tifffile;
    None when either library is missing or LibRaw cannot read it."""
    tifffile = pytest.importorskip("tifffile")
    rawpy = pytest.importorskip("rawpy")
    rng = np.random.default_rng(0)
    bayer = (rng.random((64, 96)) * 300 + 100).astype(np.uint16)
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "Lumen Test", True),  # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern RGGB
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
        (50728, "2I", 3, (1, 2, 1, 1, 1, 2), True),  # AsShotNeutral
        (50717, "I", 1, 4095, True),  # WhiteLevel
        (271, "s", 0, "LumenCam", True),
        (306, "s", 0, "2024:01:02 03:04:05", True),
    ]
    try:
        tifffile.imwrite(path, bayer, photometric=32803, extratags=tags)
        with rawpy.imread(str(path)):
            pass
    except Exception:
        return None
    return path


def test_heic_reads_with_exif(heic):
    pic = read_image(heic)
    assert pic.format == "HEIF" and pic.pixels.shape == (48, 64, 3) and pic.bit_depth == 8
    assert np.abs(pic.pixels * 255 - _gradient()).mean() < 3  # lossy HEVC at quality 95
    ex = Image.Exif()
    ex.load(pic.exif)
    assert ex[0x010F] == "LumenCam"


def test_heic_enhanced_to_jpeg_beside_it_with_exif(heic):
    assert main(["enhance", str(heic), "--quiet"]) == 0
    out = heic.with_name("phone_lumen.jpg")
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (64, 48)
        assert im.getexif().get_ifd(0x8769)[36867] == "2024:01:02 03:04:05"


def test_raw_develops_linear_16bit_with_exif(tmp_path):
    path = _make_dng(tmp_path / "cam.dng")
    if path is None:
        pytest.skip("no RAW sample can be generated here (tifffile/LibRaw)")
    pic = read_image(path)
    assert pic.format == "RAW" and pic.bit_depth == 16 and pic.pixels.shape == (64, 96, 3)
    assert pic.pixels.dtype == np.float32 and 0 <= pic.pixels.min() and pic.pixels.max() <= 1
    # no auto-brightening: data at 100-400 of 4095 stays dark (sRGB of ~2-10% linear)
    assert pic.pixels.mean() < 0.45
    assert main(["enhance", str(path), "--quiet"]) == 0
    with Image.open(tmp_path / "cam_lumen.png") as im:
        assert im.getexif()[0x010F] == "LumenCam"


def test_missing_extras_name_what_to_install(tmp_path, monkeypatch, heic):
    real_import = builtins.__import__

    def no_extras(name, *args, **kwargs):
        if name in ("pillow_heif", "rawpy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_extras)
    monkeypatch.setattr("PIL.features.check", lambda name: False)
    with pytest.raises(ImageReadError, match=r"lumen-cli\[heif\]"):
        read_image(heic)
    raw = tmp_path / "x.nef"
    raw.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(ImageReadError, match=r"lumen-cli\[raw\]"):
        read_image(raw)


def test_default_output_suffixes():
    assert default_output_suffix(".HEIC") == ".jpg"
    assert default_output_suffix(".cr3") == ".png"
    assert default_output_suffix(".tif") == ".tif"
