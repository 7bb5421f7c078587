import math

import numpy as np
import pytest
import torch

from lumen_cli.metrics import psnr, quantize8, ssim, ssim_loss, summarize


def _rand(seed, shape=(1, 3, 40, 48)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


def test_psnr_identical_is_inf_and_ssim_one():
    x = _rand(0)
    assert math.isinf(psnr(x, x).item())
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_psnr_constant_offset_known_value():
    # 8-bit values 100 vs 110 everywhere: MSE = 100 -> PSNR = 10 log10(255^2/100)
    a = torch.full((1, 3, 16, 16), 100 / 255)
    b = torch.full((1, 3, 16, 16), 110 / 255)
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)
    # an offset below half a level vanishes by quantization
    assert math.isinf(psnr(a, a + 0.4 / 255).item())


def test_psnr_is_per_image():
    a = torch.zeros(2, 3, 8, 8)
    b = a.clone()
    b[1] += 1 / 255
    out = psnr(a, b)
    assert out.shape == (2,)
    assert math.isinf(out[0].item())
    assert out[1].item() == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_ssim_constant_images_hand_computed():
    # constant images: all variances 0 -> SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    a = torch.full((1, 3, 20, 20), 100 / 255)
    b = torch.full((1, 3, 20, 20), 150 / 255)
    c1 = (0.01 * 255) ** 2
    want = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert ssim(a, b).item() == pytest.approx(want, rel=1e-9)


def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    x = _rand(1)
    y = (x * 0.7 + 0.2 * _rand(2)).clamp(0, 1)
    ours = ssim(x, y).item()
    a = quantize8(x)[0].permute(1, 2, 0).numpy()
    b = quantize8(y)[0].permute(1, 2, 0).numpy()
    ref = skm.structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert ours == pytest.approx(ref, abs=1e-9)
    ref_psnr = skm.peak_signal_noise_ratio(b, a, data_range=255)
    assert psnr(x, y).item() == pytest.approx(ref_psnr, abs=1e-9)


def test_ssim_differentiable_loss():
    x = _rand(3, (2, 3, 24, 24)).requires_grad_(True)
    y = _rand(4, (2, 3, 24, 24))
    loss = ssim_loss(x, y)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # unquantized SSIM is close to the quantized one
    assert ssim(x.detach(), y, quantize=False).mean().item() == pytest.approx(
        ssim(x.detach(), y).mean().item(), abs=5e-3
    )
    # gradient descent on the loss increases SSIM
    z = x.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([z], lr=5.0)
    before = ssim_loss(z, y).item()
    for _ in range(5):
        opt.zero_grad()
        ssim_loss(z, y).backward()
        opt.step()
    assert ssim_loss(z, y).item() < before


def test_ssim_tiny_images_use_smaller_window():
    x = _rand(5, (1, 3, 8, 8))
    assert ssim(x, x, quantize=False).item() == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(ssim(x, x * 0.5).item())


def test_summarize_mean_median():
    s = summarize([1.0, 2.0, 4.0, float("inf")])
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["median"] == pytest.approx(3.0)
    assert s["n"] == 4 and s["n_inf"] == 1


def test_ssim_loss_accurate_under_bf16_autocast():
    x = _rand(6, (1, 3, 32, 32))
    y = (x * 0.9 + 0.05).clamp(0, 1)
    want = ssim(x, y, quantize=False).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ssim(x.bfloat16(), y.bfloat16(), quantize=False)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want, abs=5e-3)  # only the bf16 rounding of the inputs


def test_ssim_components_multiply_to_ssim_and_tell_exposure_from_detail():
    from lumen_cli.metrics import ssim_components, ssim_map

    x = _rand(3)
    c = ssim_components(x, x)
    for k in ("luminance", "contrast", "structure"):
        assert c[k].item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(c["std_pred"], c["std_gt"])
    y = _rand(4) * 0.5 + 0.2
    # the product of the three factor maps is the SSIM map (C3 = C2 / 2)
    a, b = quantize8(x), quantize8(y)
    whole = ssim_map(a, b, 255.0).flatten(1).mean(1)
    from lumen_cli import metrics as M

    k = M.gaussian_kernel1d()
    mu_x, mu_y = M._filter(a, k), M._filter(b, k)
    sx = (M._filter(a * a, k) - mu_x**2).clamp_min(0).sqrt()
    sy = (M._filter(b * b, k) - mu_y**2).clamp_min(0).sqrt()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    prod = ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * (
        (2 * (M._filter(a * b, k) - mu_x * mu_y) + c2) / (sx**2 + sy**2 + c2)
    )
    assert torch.allclose(prod.flatten(1).mean(1), whole)
    # a darker copy loses luminance (and contrast) but keeps its structure exactly
    d = ssim_components((x * 0.5), x)
    assert d["luminance"].item() < 0.95 and d["structure"].item() > 0.999
    assert d["std_pred"].item() == pytest.approx(d["std_gt"].item() * 0.5, rel=0.02)
    # noise keeps the brightness but loses structure
    n = ssim_components((x + 0.2 * _rand(5) - 0.1).clamp(0, 1), x)
    assert n["luminance"].item() > 0.99 and n["structure"].item() < 0.99
