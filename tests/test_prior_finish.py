"""The shadow finish and the highlight roll-off (``lumen_cli.prior.finish``)."""

from __future__ import annotations

import math

import pytest
import torch

from lumen_cli.prior import finish


def test_highlight_rolloff_holds_highlights_keeps_hue_and_leaves_the_default_alone():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 16, 16, generator=g)
    assert torch.equal(finish.highlight_rolloff(x, None), x)  # default rendering untouched
    assert torch.equal(finish.highlight_rolloff(x * 0.7, 0.7), x * 0.7)  # darker: nothing to hold
    e = 2.0
    y = finish.highlight_rolloff(x * e, e)
    m_in, m_out = (x * e).amax(1), y.amax(1)
    below = m_in <= 1 / e
    assert torch.equal(y.amax(1)[below], m_in[below])  # identity up to the knee 1/e
    assert float(m_out.max()) <= 1.0 + 1e-6 and float(m_out.max()) > 0.95  # e lands near 1
    # hue kept: every channel scaled alike
    torch.testing.assert_close(y / m_out.unsqueeze(1), x / x.amax(1, keepdim=True))
    # monotonic and continuous (slope 1 at the knee) in the max-RGB
    m = torch.linspace(0, e, 401).view(1, 1, -1, 1).expand(1, 3, -1, 1).contiguous()
    f = finish.highlight_rolloff(m, e)[0, 0, :, 0]
    d = torch.diff(f)
    assert bool((d >= 0).all()) and float(d.max()) <= float(torch.diff(m[0, 0, :, 0]).max()) + 1e-6
    assert abs(float(f[-1]) - 1.0) < 1e-6
    assert float(finish.highlight_rolloff(torch.full((1, 3, 1, 1), 3.0), e).max()) == 1.0


def test_shadow_floor_lifts_black_by_b_and_leaves_brighter_values():
    from lumen_cli.prior.finish import shadow_floor

    x = torch.tensor([0.0, 4 / 255, 0.5, 1.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    y = shadow_floor(x, b=4 / 255, tau=4 / 255)
    assert torch.allclose(y[..., 0], torch.full((1, 3, 1), 4 / 255))
    assert torch.allclose(y[..., 1], torch.full((1, 3, 1), 4 / 255 + 4 / 255 * math.exp(-1)))
    assert torch.allclose(y[..., 2:], x[..., 2:], atol=1e-6)
    assert torch.equal(shadow_floor(x, b=0), x)


def brute_deblock(y, t, n, s, origin=(0, 0)):
    """deblock_plane's definition, window by window (reflect padding of n - 1 around y)."""
    import torch.nn.functional as F

    m = finish.dct_matrix(n).double()
    p = n - 1
    yp = F.pad(y, (p, p, p, p), mode="reflect")[0, 0].double()
    tp = F.pad(t, (p, p, p, p), mode="reflect")[0, 0].double()
    num, den = torch.zeros_like(yp), torch.zeros_like(yp)
    for i in range(yp.shape[0] - n + 1):
        for j in range(yp.shape[1] - n + 1):
            if (i - p + origin[0]) % s or (j - p + origin[1]) % s:
                continue  # not on the image-anchored grid
            c = m @ yp[i : i + n, j : j + n] @ m.T
            keep = (c.abs() >= tp[i : i + n, j : j + n].mean()).double()
            keep[0, 0] = 1
            w = 1 / keep.sum()
            num[i : i + n, j : j + n] += w * (m.T @ (c * keep) @ m)
            den[i : i + n, j : j + n] += w
    return (num / den)[p:-p, p:-p][None, None].float()


@pytest.mark.parametrize(("n", "s", "origin"), [(8, 1, (0, 0)), (8, 2, (3, 5)), (4, 2, (1, 0))])
def test_deblock_plane_is_the_sliding_window_dct_thresholding(n, s, origin):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 1, 19, 23, generator=g)
    t = torch.rand(1, 1, 19, 23, generator=g) * 0.3
    got = finish.deblock_plane(y, t, n, s, origin)
    torch.testing.assert_close(got, brute_deblock(y, t, n, s, origin), atol=1e-5, rtol=0)
    assert (got - y).abs().max() > 1 / 255  # not trivial: thresholds removed coefficients


def test_dct_deblock_removes_amplified_block_steps_only_where_the_gain_is_high():
    g = torch.Generator().manual_seed(0)
    levels = 0.45 + 0.1 * torch.rand(1, 1, 4, 12, generator=g)
    out = levels.repeat_interleave(8, 2).repeat_interleave(8, 3).expand(1, 3, 32, 96).clone()
    x_in = out.clone()
    x_in[..., :48] = out[..., :48] / 30  # left half: the output is the input amplified 30x
    y = finish.dct_deblock(x_in, out)

    def steps(t, c0, c1):  # mean |horizontal step| across the block edges of columns c0..c1
        d = (t[..., 4:-4, 1:] - t[..., 4:-4, :-1]).abs()
        return d[..., [c - 1 for c in range(c0, c1, 8)]].mean()

    assert steps(y, 8, 33) < 0.5 * steps(out, 8, 33)  # flattened where the gain was ~30
    # at gain ~1, past the reach (15 px windows + the gain blur): a fifth of an 8-bit level on
    # average; the threshold (1.75 levels) softens only the faintest block edges, by < 3 levels
    kept = (y - out)[..., 4:-4, 48 + 28 :].abs()
    assert kept.mean() < 0.25 / 255 and kept.max() < 3 / 255
    flat = torch.full((1, 3, 16, 16), 0.3)  # a flat image stays
    assert torch.allclose(finish.dct_deblock(flat / 20, flat), flat, atol=1e-6)
    assert torch.equal(finish.dct_deblock(x_in, out, k=0, kc=0), out)
    tiny = torch.rand(1, 3, 5, 6, generator=g)  # smaller than a window: replicate padding
    assert finish.dct_deblock(tiny / 10, tiny).shape == tiny.shape


def test_dct_deblock_passes_gradients_to_the_output():
    g = torch.Generator().manual_seed(2)
    out = torch.rand(1, 3, 20, 24, generator=g).requires_grad_()
    finish.dct_deblock(out.detach() / 10, out).sum().backward()
    assert out.grad is not None and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


def test_dct_deblock_thresholds_chroma_apart_from_luma():
    from lumen_cli.ops.color import rgb_to_ycbcr, ycbcr_to_rgb

    g = torch.Generator().manual_seed(3)
    ycc = torch.zeros(1, 3, 32, 32)
    ycc[:, 0] = 0.5  # flat luma; Cb and Cr in 8x8 tiles with steps between them
    ycc[:, 1:] = (
        (0.04 * torch.rand(1, 2, 4, 4, generator=g)).repeat_interleave(8, 2).repeat_interleave(8, 3)
    )
    out = ycbcr_to_rgb(ycc).clamp(0, 1)
    x_in = out / 30  # brightened 30x
    chroma = rgb_to_ycbcr(out)[:, 1:]

    def steps(t):  # mean |horizontal chroma step| across the block edges
        d = rgb_to_ycbcr(t)[:, 1:, 4:-4]
        return (d[..., 1:] - d[..., :-1]).abs()[..., [7, 15, 23]].mean()

    luma_only = finish.dct_deblock(x_in, out, kc=0)
    assert torch.allclose(rgb_to_ycbcr(luma_only)[:, 1:], chroma, atol=1e-5)  # chroma untouched
    assert steps(finish.dct_deblock(x_in, out)) < 0.5 * steps(out)  # the chroma threshold flattens
    # the chroma planes have their own window grid: it changes them, not the luma
    a = rgb_to_ycbcr(finish.dct_deblock(x_in, out, chroma_stride=2))
    b = rgb_to_ycbcr(finish.dct_deblock(x_in, out, chroma_stride=4))
    torch.testing.assert_close(a[:, :1], b[:, :1], atol=1e-5, rtol=0)
    assert not torch.allclose(a[:, 1:], b[:, 1:], atol=1e-5)
    assert finish.DEBLOCK_STRIDE_C == 4 and steps(b) < 0.5 * steps(out)


def test_deblock_plane_strided_grid_is_anchored_to_the_image_so_tiles_agree():
    g = torch.Generator().manual_seed(3)
    y = torch.rand(1, 1, 70, 90, generator=g)
    t = torch.rand(1, 1, 70, 90, generator=g) * 0.1
    # stride 1: the grid has every origin, so the anchor changes nothing
    a = finish.deblock_plane(y, t, n=8)
    assert torch.equal(a, finish.deblock_plane(y, t, n=8, origin=(3, 5)))
    for s in (2, 4):
        full = finish.deblock_plane(y, t, n=8, stride=s)
        assert full.shape == y.shape
        assert float((full - a).abs().mean()) < 0.01  # a coarser grid, nearly the same result
        # a tile at an odd offset, given its origin, matches the whole image away from its edges
        tile = finish.deblock_plane(y[..., 13:61, 21:77], t[..., 13:61, 21:77], 8, s, (13, 21))
        torch.testing.assert_close(tile[..., 8:-8, 8:-8], full[..., 21:53, 29:69])
    flat = torch.full((1, 1, 40, 40), 0.3)
    assert torch.allclose(finish.deblock_plane(flat, t[..., :40, :40], 8, 2), flat, atol=1e-6)
    try:
        finish.deblock_plane(y, t, n=8, stride=3)
    except ValueError:
        pass
    else:
        raise AssertionError("a stride that does not divide n must be refused")


def test_colour_transforms_work_with_autograd_after_inference_mode():
    """ops.color keeps no tensor made under torch.inference_mode (one would break training)."""
    from lumen_cli.ops.color import rgb_to_ycbcr, ycbcr_to_rgb

    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        rgb_to_ycbcr(x), ycbcr_to_rgb(x)
    y = x.clone().requires_grad_()
    ycbcr_to_rgb(rgb_to_ycbcr(y)).sum().backward()
    assert torch.allclose(y.grad, torch.ones_like(y), atol=1e-5)
