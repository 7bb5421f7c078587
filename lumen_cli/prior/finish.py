"""The shadow finish (lumen addition): the last inference steps of the tone-prior pipelines
(kind-lite, diff-retinex-lite), and the highlight roll-off of ``--exposure`` above 1.

- ``finish_shadows`` = ``shadow_floor(dct_deblock(x_in, out))``: a gain-adaptive sliding-window
  DCT thresholding (Yu & Sapiro, "DCT image denoising: a simple and effective image denoising
  algorithm", IPOL 2011) of Y, Cb and Cr that removes amplified JPEG blocks and noise where a dim
  input was brightened the most, then a soft black floor of at most 4/255;
- ``highlight_rolloff``: bends the highlights of a relit output instead of clipping them.

Images are (B,3,h,w) float in [0,1], sRGB. How the constants were chosen: benchmarks/NOTES.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lumen_cli.ops.color import luma, rgb_to_ycbcr, ycbcr_to_rgb
from lumen_cli.ops.filters import gaussian_blur

SHADOW_FLOOR = (4 / 255, 4 / 255)  # (b, τ) of shadow_floor, chosen on every 7th sice/train pair
DEBLOCK_K = 1.75  # luma threshold of dct_deblock in units of the local gain, chosen on sice/train
DEBLOCK_KC = 6.0  # its chroma (Cb, Cr) threshold, chosen alike
DEBLOCK_BLOCK = 16  # its DCT window: twice JPEG's block size, chosen alike
DEBLOCK_STRIDE = 2  # its window grid step (1: every pixel; 2: a quarter of the windows)
DEBLOCK_STRIDE_C = 4  # the window grid step of its chroma planes (Cb, Cr), chosen on sice/train


def highlight_rolloff(x: torch.Tensor, exposure: float | None) -> torch.Tensor:
    """Hold the highlights of an output brightened by ``--exposure`` e > 1 instead of clipping
    them. x: (B,3,h,w) sRGB, the unclipped product R^·L^ (values up to about e). Per pixel, its
    max-RGB m is mapped by a curve that is the identity up to the knee 1/e and then bends
    smoothly (continuous slope) so that e lands on 1; the three channels are scaled alike, so
    hue is kept and no channel clips. m above e goes to 1. For e <= 1 (or None): x unchanged,
    so the default rendering is never touched. Pointwise: the same in every tile.

    Why: ``--exposure`` multiplies the illumination, and a plain clip turns the highlights of
    a bright photo to flat white."""
    e = 1.0 if exposure is None else float(exposure)
    if e <= 1.0:
        return x
    k = 1.0 / e
    c = (1.0 - k) / (e - 1.0)  # makes the slope 1 at the knee
    m = x.amax(1, keepdim=True)
    t = ((m - k) / (e - k)).clamp(0, 1)
    f = k + (1.0 - k) * t * (1.0 + c) / (t + c)
    scale = torch.where(m > k, f / m.clamp_min(1e-6), torch.ones_like(m))
    return x * scale


def shadow_floor(x: torch.Tensor, b: float = SHADOW_FLOOR[0], tau: float = SHADOW_FLOOR[1]):
    """x + b·exp(−x/τ) on every channel of (B,3,h,w) sRGB x in [0,1]: lifts the deepest blacks
    by up to ``b`` and leaves values a few τ above 0 unchanged (the lift at x is b·e^(−x/τ)).

    Why: the tone curves start at 0 (``nets.tone``), so near-black input stays near black, while
    on SICE the reference of such pixels is a dark grey."""
    if b <= 0:
        return x
    return (x + b * torch.exp(-x / tau)).clamp(0, 1)


def local_gain(x_in: torch.Tensor, out: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """(B,1,h,w) gain from input to output: blur_σ(luma out) / max(blur_σ(luma x_in), 0.5/255).
    Large where a dim input was brightened the most, so its 8-bit and JPEG quantisation steps
    (and its noise) were amplified the most."""
    lo = gaussian_blur(luma(out.float()), sigma)
    return lo / gaussian_blur(luma(x_in.float()), sigma).clamp_min(0.5 / 255)


def dct_matrix(n: int = DEBLOCK_BLOCK) -> torch.Tensor:
    """The orthonormal DCT-II matrix (n, n) float32: row u is the u-th basis vector."""
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * i[None] + 1) * i[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()


def deblock_plane(
    y: torch.Tensor,
    t: torch.Tensor,
    n: int = DEBLOCK_BLOCK,
    stride: int = 1,
    origin: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Sliding-window n x n DCT hard thresholding of one plane y (1,1,H,W) with a per-pixel
    threshold t (1,1,H,W): every window keeps its DC and the coefficients at least as large as
    the mean of t over the window, and the windows are averaged back with weights
    1 / (coefficients kept).

    Window origins lie on a grid of step ``stride`` (1: every pixel, Yu & Sapiro's sliding
    window; ``stride`` must divide n, so each pixel is covered by (n/stride)² windows). The grid
    is anchored to image coordinates: ``origin`` = (row, column) of y's first pixel in the whole
    image, so a tile sees the windows the whole image has. The plane is reflect-padded by n − 1
    (replicate if too small). Float32, autocast off.

    Computation: the windows whose origins share an offset (dy, dx) modulo n tile the plane
    without overlap, so each of the (n/stride)² offsets is a batch of disjoint blocks, reached
    by reshaping (no im2col / col2im): per column offset dx, one horizontal DCT of every block
    row (a matrix product), then per row offset dy the vertical DCT, the thresholding and the
    vertical inverse as batched matrix products, summed in the horizontal-frequency domain, and
    one horizontal inverse DCT per dx.
    """
    if n % stride:
        raise ValueError(f"deblock stride {stride} must divide the window size {n}")
    _, _, H, W = y.shape
    p, s, k = n - 1, stride, n // stride
    oy, ox = (p - origin[0]) % s, (p - origin[1]) % s  # first grid origin in the padded plane
    pads = (p, p + s, p, p + s)
    mode = "reflect" if min(H, W) > p + s else "replicate"
    m = dct_matrix(n).to(y.device)
    mt = m.t().contiguous()
    with torch.autocast(y.device.type, enabled=False):
        yp = F.pad(y.float(), pads, mode=mode)[0, 0, oy:, ox:]
        Hp, Wp = yp.shape
        rows, cols = (Hp - n) // s + 1, (Wp - n) // s + 1  # window origins
        tp = F.pad(t.float(), pads, mode=mode)[..., oy:, ox:]  # mean of t per window:
        tw = F.avg_pool2d(F.avg_pool2d(tp, (n, 1), (s, 1)), (1, n), (1, s))[0, 0]  # separable
        num = yp.new_zeros(Hp, Wp)
        den = yp.new_zeros(Hp, Wp)
        for dx in range(0, n, s):
            nbx = ((cols - 1) * s - dx) // n + 1  # blocks in a row at this column offset
            if nbx <= 0:
                continue
            span = slice(dx, dx + nbx * n)
            # horizontal DCT of every block row: (Hp, nbx * n), column = block * n + u
            r = (yp[:, span].reshape(Hp * nbx, n) @ mt).view(Hp, nbx * n)
            acc = yp.new_zeros(Hp, nbx * n)  # vertical inverses, still horizontal frequencies
            wsum = yp.new_zeros(Hp, nbx)
            for dy in range(0, n, s):
                nby = ((rows - 1) * s - dy) // n + 1
                if nby <= 0:
                    continue
                band = slice(dy, dy + nby * n)
                coef = torch.matmul(m, r[band].view(nby, n, nbx * n))  # (nby, v, nbx * n)
                c4 = coef.view(nby, n, nbx, n)  # (block row, v, block, u)
                thr = tw[dy // s :: k, dx // s :: k][:nby, :nbx, None]
                keep = c4.detach().abs().ge_(thr[:, None])  # float 0/1: faster than bool
                keep[:, 0, :, 0] = 1
                w = keep.sum((1, 3)).reciprocal_()  # (nby, nbx)
                kept = c4 * keep.mul_(w[:, None, :, None])
                acc[band].view(nby, n, nbx * n).add_(torch.matmul(mt, kept.view(nby, n, -1)))
                wsum[band].view(nby, n, nbx).add_(w[:, None])
            num[:, span] += (acc.view(Hp * nbx, n) @ m).view(Hp, nbx * n)
            den[:, span].view(Hp, nbx, n).add_(wsum[..., None])
        out = num / den.clamp_min(1e-12)
        return out[p - oy : p - oy + H, p - ox : p - ox + W][None, None]


def dct_deblock(
    x_in: torch.Tensor,
    out: torch.Tensor,
    k: float = DEBLOCK_K,
    kc: float = DEBLOCK_KC,
    n: int = DEBLOCK_BLOCK,
    stride: int = DEBLOCK_STRIDE,
    origin: tuple[int, int] = (0, 0),
    chroma_stride: int | None = None,
) -> torch.Tensor:
    """Sliding-window DCT hard thresholding (Yu & Sapiro, "DCT image denoising: a simple and
    effective image denoising algorithm", IPOL 2011) of the output ``out`` in JPEG's YCbCr:
    ``deblock_plane`` of Y with the per-pixel threshold k · g / 255 and of Cb and Cr with
    kc · g / 255, g = ``local_gain`` from x_in to out. x_in, out: (B,3,h,w) in [0,1]; returns
    (B,3,h,w) in [0,1]; k and kc 0: ``out``. ``stride`` and ``origin``: the window grid of
    ``deblock_plane`` (``origin``: where ``out`` starts in the whole image, for tiles);
    ``chroma_stride``: the grid step of Cb and Cr (None: DEBLOCK_STRIDE_C).

    Why: brightening a dim JPEG by 10-30x turns its 8x8 blocks (the coefficients that JPEG
    zeroed) and its noise into flat tiles with steps between them, which the reference does not
    have; the windows of a sliding grid do not line up with JPEG's, so their average removes the
    steps, and the threshold follows the gain, so bright inputs are left nearly untouched. An
    edge-preserving filter keeps exactly those steps (the guided filter it replaced). JPEG
    quantises (and subsamples) Cb and Cr more coarsely than Y, hence the larger chroma threshold;
    like Yu & Sapiro's colour version, the planes are decorrelated first. Reach: n − 1 px plus
    the gain blur."""
    if k <= 0 and kc <= 0:
        return out
    with torch.autocast(out.device.type, enabled=False):
        g = local_gain(x_in, out) / 255
        ycc = rgb_to_ycbcr(out)
        res = torch.empty_like(ycc)
        cs = DEBLOCK_STRIDE_C if chroma_stride is None else chroma_stride
        for b in range(out.shape[0]):  # one plane at a time: n² coefficient maps per pixel
            for c, (kk, s) in enumerate(((k, stride), (kc, cs), (kc, cs))):
                plane = ycc[b : b + 1, c : c + 1]
                res[b : b + 1, c : c + 1] = (
                    deblock_plane(plane, kk * g[b : b + 1], n, s, origin) if kk > 0 else plane
                )
        return ycbcr_to_rgb(res).clamp(0, 1)


def finish_shadows(
    x_in: torch.Tensor, out: torch.Tensor, opts=None, origin: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """The last step of the tone-prior pipelines (kind-lite, diff-retinex-lite):
    ``shadow_floor(dct_deblock(x_in, out))``; ``opts.extra["post"]`` false turns it off
    (``opts`` None: on, as the training losses use it). ``origin``: (row, column) of the tile
    in the whole image, so that tiles use the whole image's DCT window grid.
    Reach: the gain blur (σ 3 px, about 12 px) plus the 16 px DCT windows (15 px), inside the
    tiles' 32 px overlap. The constants were chosen on sice/train
    (benchmarks/NOTES.md)."""
    if opts is not None and not opts.extra.get("post", True):
        return out
    return shadow_floor(dct_deblock(x_in, out, origin=origin))


__all__ = [
    "DEBLOCK_BLOCK",
    "DEBLOCK_K",
    "DEBLOCK_KC",
    "SHADOW_FLOOR",
    "dct_deblock",
    "dct_matrix",
    "deblock_plane",
    "finish_shadows",
    "highlight_rolloff",
    "local_gain",
    "shadow_floor",
]
