"""``lumen compare``: a contact sheet with a column per method and metrics with --ref."""

import numpy as np
from PIL import Image

from lumen_cli.cli.app import main
from lumen_cli.sheet import Cell, draw_sheet
from tests.conftest import save_png


def test_sheet_layout():
    a = np.zeros((40, 80, 3), np.float32)
    b = np.ones((20, 20, 3), np.float32)
    out = draw_sheet([[Cell(a, ["in", "x"]), Cell(b, ["a very long title " * 5])]], height=32)
    assert out.dtype == np.uint8 and out.shape[2] == 3
    assert out.shape[1] >= 64 + 32 and out.shape[0] > 32


def test_compare_writes_sheet_with_reference(tmp_path, dim_image):
    save_png(tmp_path / "a.png", dim_image(40, 56, seed=1))
    save_png(tmp_path / "b.png", dim_image(32, 48, seed=2))
    ref = tmp_path / "ref"
    ref.mkdir()
    save_png(ref / "a.png", dim_image(40, 56, seed=3))
    sheet = tmp_path / "sheet.png"
    args = ["compare", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(sheet)]
    rc = main([*args, "--methods", "retinex", "--ref", str(ref), "--height", "48", "-q"])
    assert rc == 0
    with Image.open(sheet) as im:
        w, h = im.size
    # two rows; row a: input, retinex, reference -> three columns
    assert h > 2 * 48 and w > 3 * 48
    assert main([*args, "--methods", "retinex", "-q"]) == 2  # exists, no --overwrite


def test_compare_refuses_unknown_method(tmp_path, dim_image, capsys):
    save_png(tmp_path / "a.png", dim_image(16, 16))
    rc = main(
        ["compare", str(tmp_path / "a.png"), "-o", str(tmp_path / "s.png"), "--methods", "nope"]
    )
    assert rc == 2
    assert "unknown method" in capsys.readouterr().err
