import os

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("LUMEN_THREADS", "1")


@pytest.fixture
def dim_image():
    """A small dim synthetic scene, (h,w,3) float32 in [0,1]."""
    from lumen_cli.sample import darken, make_scene

    def make(h=48, w=64, seed=0):
        return darken(make_scene(h, w), seed=seed)

    return make


def save_png(path, arr):
    from PIL import Image

    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path)
    return path
