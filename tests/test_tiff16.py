"""16-bit colour TIFF output keeps EXIF (with its Exif/GPS sub-directories) and ICC."""

import numpy as np
import pytest
from PIL import Image

from lumen_cli.io import read_image, write_image

pytest.importorskip("tifffile")
cv2 = pytest.importorskip("cv2")


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_colour_tiff_keeps_exif_and_icc(tmp_path, alpha):
    rng = np.random.default_rng(0)
    a = (rng.random((12, 10, 4 if alpha else 3)) * 65535).astype(np.uint16)
    src = tmp_path / "src.png"
    ok, enc = cv2.imencode(".png", a[..., [2, 1, 0, 3][: a.shape[2]]])
    assert ok
    ex = Image.Exif()
    ex[0x010F] = "LumenCam"
    ex.get_ifd(0x8769)[36867] = "2024:01:02 03:04:05"
    ex.get_ifd(0x8825)[1] = "N"
    from lumen_cli.io import png
    from lumen_cli.io.color import srgb_profile_bytes

    src.write_bytes(png.add_metadata(enc.tobytes(), srgb_profile_bytes(), ex.tobytes()))
    pic = read_image(src)
    assert pic.bit_depth == 16 and pic.icc_profile and pic.exif
    out = tmp_path / "out.tif"
    write_image(pic, pic.pixels, out)
    back = read_image(out)
    assert back.bit_depth == 16 and np.abs(back.pixels - pic.pixels).max() < 1e-6
    if alpha:
        assert np.array_equal(back.alpha, pic.alpha)
    with Image.open(out) as im:
        got = im.getexif()
        assert got[0x010F] == "LumenCam" and im.info.get("icc_profile")
        assert got.get_ifd(0x8769)[36867] == "2024:01:02 03:04:05"
        assert got.get_ifd(0x8825)[1] == "N"
