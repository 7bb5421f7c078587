"""ops.filters: quantisation step detection, POCS dequantisation, the Gaussian blur."""

from __future__ import annotations

import pytest
import torch

from lumen_cli.ops.filters import dequantize, dequantize_luma, gaussian_blur, quantization_step


def test_quantization_step_detects_the_8bit_grid():
    codes = torch.randint(0, 256, (1, 3, 40, 50)).float() / 255
    assert quantization_step(codes) == 1 / 255
    assert quantization_step(torch.rand(1, 3, 40, 50)) == 0.0  # a 16-bit / converted picture
    assert quantization_step(torch.randint(0, 65536, (1, 3, 40, 50)).float() / 65535) == 0.0


def test_dequantize_turns_one_code_steps_into_ramps_and_keeps_real_edges():
    # a dark flat area stored as 8x8 blocks of codes 2 and 3, and a real edge of 12 codes
    blocks = (torch.arange(64)[:, None] // 8 + torch.arange(64)[None] // 8) % 2
    x = torch.cat([2 + blocks, torch.full((64, 32), 15)], 1).float()[None, None] / 255
    y = dequantize(x, 1 / 255, sigma=1.0, iters=8)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float((y - x).abs().max()) <= 0.5 / 255 + 1e-7  # inside every quantisation cell
    step_in = (x[..., :, 1:48] - x[..., :, :47]).abs().amax()  # away from the real edge
    step_out = (y[..., :, 1:48] - y[..., :, :47]).abs().amax()
    assert float(step_out) < 0.25 * float(step_in)  # the block edges are ramps now
    edge = y[..., :, 64:].mean() - y[..., :, :60].mean()
    assert float(edge) * 255 > 11.5  # the 12-code edge is kept
    assert torch.equal(dequantize(x, 0.0), x)


def test_dequantize_luma_keeps_colour_ratios_and_greys_only_black():
    torch.manual_seed(0)
    x = torch.randint(0, 6, (1, 3, 32, 32)).float() / 255
    x[..., :8, :8] = 0  # a block of code 0
    y = dequantize_luma(x, 1 / 255)
    from lumen_cli.ops.color import luma

    lit = luma(x) > 1 / 255  # above one code: coloured; the rest counts as black
    ratio_in = x / x.sum(1, keepdim=True).clamp_min(1e-9)
    ratio_out = y / y.sum(1, keepdim=True).clamp_min(1e-9)
    assert torch.allclose((ratio_in * lit)[lit.expand_as(x)], (ratio_out * lit)[lit.expand_as(x)])
    assert float((y - x).abs().amax()) > 0.1 / 255
    black = y[..., :8, :8]
    assert torch.allclose(black[:, 0], black[:, 1]) and torch.allclose(black[:, 1], black[:, 2])
    assert torch.equal(dequantize_luma(x, 0.0), x)


@pytest.mark.parametrize(
    "shape,sigma",
    [((2, 3, 40, 50), 2.0), ((1, 1, 5, 7), 3.0), ((1, 2, 3, 3), 1.0), ((1, 4, 64, 70), 8.0)],
)
def test_gaussian_blur_opencv_path_equals_the_shifted_sums(shape, sigma):
    """Outside autograd the CPU blur is OpenCV's; with a gradient to keep it is torch's shifted
    sums: the same kernel (cut alike on tiny inputs) and the same reflect borders."""
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    fast = gaussian_blur(x, sigma)
    with torch.enable_grad():
        slow = gaussian_blur(x.clone().requires_grad_(True), sigma).detach()
    assert fast.shape == x.shape and fast.dtype == x.dtype
    assert torch.allclose(fast, slow, atol=1e-6)
    cl = gaussian_blur(x.contiguous(memory_format=torch.channels_last), sigma)
    assert torch.allclose(cl, slow, atol=1e-6)
    assert gaussian_blur(x.bfloat16(), sigma).dtype == torch.bfloat16
