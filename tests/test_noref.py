"""No-reference measures (lumen_cli.noref) on images whose answers are known."""

from __future__ import annotations

import math

import torch

from lumen_cli.noref import flat_mask, hue_drift, noise_sigma, shadow_shift


def test_noise_sigma_of_white_gaussian_noise_on_grey():
    g = torch.Generator().manual_seed(0)
    sigma = 6.0  # per RGB channel, 8-bit units, independent
    x = 0.5 + torch.randn(1, 3, 160, 160, generator=g) * sigma / 255
    est = noise_sigma(x, flat_only=False)[0]
    # Y, Cb, Cr are fixed linear mixes of the channels: σ times the norm of each matrix row
    rows = torch.tensor(
        [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
    )
    expect = sigma * rows.norm(dim=1).double()
    assert torch.allclose(est, expect, rtol=0.03)
    assert torch.all(noise_sigma(torch.full((1, 3, 32, 32), 0.3), flat_only=False) < 1e-9)


def test_noise_sigma_ignores_edges_in_the_flat_half():
    g = torch.Generator().manual_seed(1)
    i = torch.arange(96)
    lines = ((i[:, None] + i[None, :]) % 16 < 2).float()  # diagonal lines, an eighth of it
    x = (0.3 + 0.5 * lines).expand(1, 3, 96, 96) + torch.randn(1, 3, 96, 96, generator=g) / 255
    m = flat_mask(x)
    assert m.shape == (1, 1, 94, 94) and 0.4 < m.float().mean() < 0.9
    flat, all_px = noise_sigma(x)[0, 0], noise_sigma(x, flat_only=False)[0, 0]
    assert flat < all_px / 3  # the lines dominate the unmasked estimate, not the masked one
    assert abs(float(flat) - 0.668) < 0.25  # σ_Y of 1/255 per channel, 0.67 in 8-bit units


def test_shadow_shift_is_zero_for_a_neutral_gain_and_sees_a_green_lift():
    g = torch.Generator().manual_seed(2)
    inp = torch.rand(1, 3, 64, 64, generator=g) * 0.03  # all of it in the shadows
    assert float(shadow_shift((inp * 5).clamp(0, 1), inp)[0]) < 1e-6  # brightening only
    green = inp * 5
    green[:, 1] += 0.04  # ~10/255 more green in the shadows
    shift = float(shadow_shift(green, inp)[0])
    assert 5.0 < shift < 10.5  # the CbCr distance of a +10 green step is about 9.4
    bright = torch.full((1, 3, 32, 32), 0.5)
    assert math.isnan(float(shadow_shift(bright, bright)[0]))  # no shadows: nothing to measure


def test_hue_drift_is_zero_for_a_neutral_gain_and_sees_a_tint():
    g = torch.Generator().manual_seed(3)
    # a smooth colourful picture in mid-tones, and the same scene one stop brighter
    base = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 8, generator=g) * 0.3 + 0.1, size=(64, 64), mode="bilinear"
    )
    brighter = base * 1.5  # a gain keeps r, g over r+g+b
    assert float(hue_drift(base, brighter)[0]) < 1e-6
    grey = torch.full((1, 3, 32, 32), 0.3)
    red = grey.clone()
    red[:, 0] = 0.36  # chromaticity (0.36, 0.3) / 0.96 against (1/3, 1/3)
    want = math.hypot(0.36 / 0.96 - 1 / 3, 0.3 / 0.96 - 1 / 3) * 100
    assert abs(float(hue_drift(grey, red)[0]) - want) < 1e-6
    white = torch.ones(1, 3, 32, 32)
    assert math.isnan(float(hue_drift(white, white)[0]))  # clipped: no hue to compare
