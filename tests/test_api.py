"""The library API: lumen_cli.enhance / decompose take a PIL image, a numpy array or a path and
give back the same kind; importing lumen_cli stays light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import lumen_cli
from lumen_cli.errors import UsageError


def test_import_is_light():
    code = "import sys, lumen_cli; print('torch' in sys.modules, lumen_cli.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_array_in_array_out(dim_image, dtype):
    x = dim_image(40, 56)
    scale = {np.uint8: 255, np.uint16: 65535, np.float32: 1}[dtype]
    arr = (x * scale).round().astype(dtype) if scale > 1 else x.astype(dtype)
    y = lumen_cli.enhance(arr, method="retinex", device="cpu")
    assert y.dtype == dtype and y.shape == arr.shape
    assert y.astype(np.float64).mean() > arr.astype(np.float64).mean()  # brighter


def test_same_pixels_whatever_the_container(dim_image, tmp_path):
    from PIL import Image

    from tests.conftest import save_png

    path = save_png(tmp_path / "dim.png", dim_image(40, 56))
    im = Image.open(path)
    a = lumen_cli.enhance(np.asarray(im), method="retinex", device="cpu")
    b = lumen_cli.enhance(im, method="retinex", device="cpu")
    c = lumen_cli.enhance(str(path), method="retinex", device="cpu")
    assert isinstance(b, Image.Image) and isinstance(c, Image.Image)
    assert np.array_equal(a, np.asarray(b)) and np.array_equal(a, np.asarray(c))


def test_alpha_is_carried_over(dim_image):
    from PIL import Image

    rgba = np.concatenate([dim_image(32, 32), np.full((32, 32, 1), 0.5, np.float32)], -1)
    im = Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA")
    out = lumen_cli.enhance(im, method="retinex", device="cpu")
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(im)[..., 3])


def test_decompose_maps_and_gray_arrays(dim_image):
    gray = dim_image(32, 48)[..., 1]  # (H,W): read as gray RGB
    maps = lumen_cli.decompose(gray, method="retinex", device="cpu")
    assert maps["reflectance"].shape == (32, 48, 3) and maps["illumination"].shape == (32, 48)


def test_bad_inputs_are_usage_errors():
    with pytest.raises(UsageError):
        lumen_cli.enhance(np.zeros((4, 4, 2), np.uint8), method="retinex", device="cpu")
    with pytest.raises(UsageError):
        lumen_cli.enhance([1, 2, 3], method="retinex", device="cpu")
    with pytest.raises(UsageError):
        lumen_cli.enhance(np.zeros((8, 8, 3), np.uint8), method="retinex", exposure=0)


def test_a_method_without_decomposition_refuses_cleanly():
    from lumen_cli.api import decompose_tensor
    from lumen_cli.pipelines.base import Pipeline

    class Plain(Pipeline):
        method = "plain"

        def enhance(self, x, ctx, region, opts):
            return x

    assert Plain.decomposes is False
    with pytest.raises(UsageError):
        decompose_tensor(Plain(), torch.zeros(1, 3, 8, 8))
