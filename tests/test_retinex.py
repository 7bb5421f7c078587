import numpy as np
import torch

from lumen_cli.methods.retinex.pipeline import RetinexPipeline
from lumen_cli.ops.color import luma
from lumen_cli.ops.filters import estimate_noise
from lumen_cli.pipelines.base import EnhanceOptions
from lumen_cli.pipelines.run import decompose_image, enhance_image
from lumen_cli.retinex import classical as C


def _t(a):
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def test_wls_keeps_edges_and_smooths_texture():
    t0 = torch.full((1, 1, 40, 40), 0.2)
    t0[..., :, 20:] = 0.8
    noisy = t0 + 0.05 * torch.randn_like(t0, generator=None) * (torch.rand_like(t0) > 0.5)
    t = C.wls_smooth(noisy.clamp(0, 1))
    assert t[..., 5:35, 3:15].std() < noisy[..., 5:35, 3:15].std()  # texture smoothed
    assert (t[..., :, 24:].mean() - t[..., :, :16].mean()) > 0.5  # the edge survives


def test_brightens_dim_image_without_colour_cast(dim_image):
    x = _t(dim_image(64, 96))
    y = enhance_image(RetinexPipeline(), x, EnhanceOptions(), tile=None)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert luma(y).mean() > 2 * luma(x).mean()
    gray = torch.full((1, 3, 32, 32), 0.08)  # a neutral grey stays neutral
    g = enhance_image(RetinexPipeline(), gray, EnhanceOptions(), tile=None)
    assert (g.amax(1) - g.amin(1)).max() < 1e-5


def test_exposure_controls_brightness(dim_image):
    x = _t(dim_image(64, 96))
    lows = [
        float(
            luma(enhance_image(RetinexPipeline(), x, EnhanceOptions(exposure=e), tile=None)).mean()
        )
        for e in (0.6, 1.0, 1.6)
    ]
    assert lows[0] < lows[1] < lows[2]


def test_bright_image_is_left_alone():
    x = torch.full((1, 3, 32, 32), 0.7)
    y = enhance_image(RetinexPipeline(), x, EnhanceOptions(), tile=None)
    assert torch.allclose(y, x, atol=1e-4)


def test_decompose_recomposes(dim_image):
    x = _t(dim_image(48, 64))
    maps = decompose_image(RetinexPipeline(), x, tile=None)
    r, l = maps["reflectance"], maps["illumination"]
    assert r.shape == (1, 3, 48, 64) and l.shape == (1, 1, 48, 64)
    assert float(l.min()) >= C_FLOOR()
    inside = (r < 1).all(1, keepdim=True).expand_as(r)  # where R was not clipped at 1
    assert inside.float().mean() > 0.5
    assert torch.allclose((r * l)[inside], x[inside], atol=1e-4)


def C_FLOOR():
    from lumen_cli.methods.retinex.pipeline import FLOOR

    return FLOOR


def test_noise_estimate():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(0.3 + rng.normal(0, 0.02, (1, 3, 128, 128)).astype(np.float32))
    assert abs(estimate_noise(x) - 0.02) < 0.006
