"""A synthetic dim test scene, so the quick-start works with no dataset and no download.

``python -m lumen_cli.sample out.png`` writes a 640x426 under-exposed, slightly noisy picture
(coloured shapes, a gradient sky, fine stripes) as a camera might record it at night.
"""

from __future__ import annotations

import sys

import numpy as np

from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear


def make_scene(h: int = 426, w: int = 640, seed: int = 0) -> np.ndarray:
    """(h,w,3) float32 in [0,1] sRGB: a normally exposed synthetic scene."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 0.35 + 0.25 * yy / h
    img[..., 1] = 0.45 + 0.2 * yy / h
    img[..., 2] = 0.75 - 0.1 * yy / h
    ground = yy > 0.62 * h
    img[ground] = (0.35, 0.42, 0.22)
    disc = (yy - 0.35 * h) ** 2 + (xx - 0.25 * w) ** 2 < (0.15 * h) ** 2
    img[disc] = (0.9, 0.35, 0.2)
    box = (abs(yy - 0.55 * h) < 0.18 * h) & (abs(xx - 0.68 * w) < 0.12 * w)
    img[box] = (0.25, 0.35, 0.8)
    stripes = (abs(yy - 0.8 * h) < 0.08 * h) & (xx > 0.1 * w) & (xx < 0.45 * w)
    img[stripes] = np.where((xx[stripes] // 4) % 2 == 0, 0.9, 0.15)[:, None]
    return img


def darken(img: np.ndarray, exposure: float = 0.12, noise: float = 0.01, seed: int = 0):
    """Under-expose in linear light and add shot/read noise, then back to sRGB."""
    rng = np.random.default_rng(seed)
    lin = srgb_to_linear(img) * exposure
    lin = lin + rng.normal(0, 1, lin.shape).astype(np.float32) * np.sqrt(lin * noise**2 + 1e-6)
    lin = np.clip(lin, 0, 1)
    return linear_to_srgb(lin).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    from PIL import Image

    argv = sys.argv[1:] if argv is None else argv
    dest = argv[0] if argv else "lumen-sample.png"
    arr = np.round(darken(make_scene()) * 255).astype(np.uint8)
    Image.fromarray(arr).save(dest)
    print(dest)


if __name__ == "__main__":
    main()
