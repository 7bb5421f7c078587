"""Diff-Retinex's Transformer Decomposition Network (TDN), built from MDLA transformer blocks.

Structure after Yi et al., ICCV 2023 (and its official code): a reflectance branch that is a
small Restormer-style U-Net whose attention (MDLA, multi-head depth-wise convolution layer
attention) mixes depth-wise 3x3, 5x5 and 7x7 convolutions of Q, K and V and attends *across
channels* -- the attention matrix is (C/h x C/h) per head, so the cost grows linearly with the
pixel count and any image size works, tiled or not; and an illumination branch that is a small
CNN. Both outputs pass a sigmoid.

``TDN(x) -> (R, L)``: x (B,3,H,W) float in [0,1] sRGB, H and W multiples of 4;
R (B,3,H,W) in (0,1) reflectance, L (B,1,H,W) in (0,1) illumination, with x ~ R * L.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of a (B,C,H,W) map (with bias): per pixel, so tiles
    and whole images agree."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B,H,W,C) view: contiguous for channels-last maps, which the nets use on the CPU
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, 1e-5)
        return y.permute(0, 3, 1, 2)


class MDLA(nn.Module):
    """Multi-head depth-wise convolution layer attention (channel attention, linear in pixels).

    Q, K, V come from a 1x1 projection followed by three depth-wise convolutions (3, 5, 7) whose
    outputs are fused by 1x1 convolutions; attention is softmax(q_hat k_hat^T * tau) over the
    channel axis with L2-normalised q, k and a learned per-head temperature tau.
    """

    def __init__(self, dim: int, heads: int, kernels: tuple[int, ...] = (3, 5, 7)):
        super().__init__()
        if dim % heads:
            raise ValueError(f"MDLA: dim {dim} not divisible by heads {heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.dw = nn.ModuleList(
            nn.Conv2d(dim * 3, dim * 3, k, padding=k // 2, groups=dim * 3, bias=False)
            for k in kernels
        )
        n = len(kernels)
        self.fuse_q = nn.Conv2d(dim * n, dim, 1, bias=False)
        self.fuse_k = nn.Conv2d(dim * n, dim, 1, bias=False)
        self.fuse_v = nn.Conv2d(dim * n, dim, 1, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        base = self.qkv(x)
        parts = [conv(base).chunk(3, dim=1) for conv in self.dw]  # [(q, k, v) per kernel]
        q = self.fuse_q(torch.cat([p[0] for p in parts], 1))
        k = self.fuse_k(torch.cat([p[1] for p in parts], 1))
        v = self.fuse_v(torch.cat([p[2] for p in parts], 1))
        return self.out(channel_attention(q, k, v, self.heads, self.temperature))


def channel_attention(q, k, v, heads: int, temperature: torch.Tensor) -> torch.Tensor:
    """Transposed (channel) attention: (B,C,H,W) q, k, v -> (B,C,H,W); cost O(C^2 H W / heads)."""
    b, c, h, w = q.shape
    q = F.normalize(q.reshape(b, heads, c // heads, h * w).float(), dim=-1)
    k = F.normalize(k.reshape(b, heads, c // heads, h * w).float(), dim=-1)
    attn = (q @ k.transpose(-2, -1) * temperature).softmax(dim=-1)
    out = attn.to(v.dtype) @ v.reshape(b, heads, c // heads, h * w)
    return out.reshape(b, c, h, w)


class GatedFFN(nn.Module):
    """1x1 expand -> depth-wise 3x3 -> GELU -> 1x1 project (as in the official TDN)."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.inp = nn.Conv2d(dim, hidden, 1, bias=False)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.dw(self.inp(x))))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + MDLA(norm(x)); x + FFN(norm(x))."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm1 = ChannelNorm(dim)
        self.attn = MDLA(dim, heads)
        self.norm2 = ChannelNorm(dim)
        self.ffn = GatedFFN(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _blocks(n: int, dim: int, heads: int, expansion: float) -> nn.Sequential:
    return nn.Sequential(*[TransformerBlock(dim, heads, expansion) for _ in range(n)])


class TDN(nn.Module):
    """Transformer Decomposition Network.

    Reflectance branch: 3-level U-Net (dims d, 2d, 4d) of MDLA blocks, pixel-(un)shuffle
    resampling, a refinement stage at 2d, and a 3x3 output conv. Illumination branch: a
    ``l_channels``-wide CNN (3x3, 5x5, 3x3, 3x3 convs, replicate padding) with a 1x1 head.
    Official sizes: dim 24, blocks (1, 2, 2), refinement 4, heads (1, 2, 4), FFN 2.66, l 32.
    ``stem`` > 1 (lumen addition, for speed on CPUs) runs both branches on the
    pixel-unshuffled image at H/stem and pixel-shuffles the outputs back to full size.
    """

    def __init__(
        self,
        dim: int = 24,
        blocks: tuple[int, int, int] | list[int] = (1, 2, 2),
        refinement: int = 4,
        heads: tuple[int, int, int] | list[int] = (1, 2, 4),
        ffn_expansion: float = 2.66,
        l_channels: int = 32,
        stem: int = 1,
    ):
        super().__init__()
        self.stem = stem
        self.size_multiple = 4 * stem
        s2 = stem * stem
        d = dim
        self.embed = nn.Conv2d(3 * s2, d, 3, padding=1, bias=False)
        self.enc1 = _blocks(blocks[0], d, heads[0], ffn_expansion)
        self.down12 = nn.Sequential(
            nn.Conv2d(d, d // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )
        self.enc2 = _blocks(blocks[1], 2 * d, heads[1], ffn_expansion)
        self.down23 = nn.Sequential(
            nn.Conv2d(2 * d, d, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )
        self.mid = _blocks(2 * blocks[2], 4 * d, heads[2], ffn_expansion)
        self.up32 = nn.Sequential(
            nn.Conv2d(4 * d, 8 * d, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )
        self.reduce2 = nn.Conv2d(4 * d, 2 * d, 1, bias=False)
        self.dec2 = _blocks(blocks[1], 2 * d, heads[1], ffn_expansion)
        self.up21 = nn.Sequential(
            nn.Conv2d(2 * d, 4 * d, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )
        self.dec1 = _blocks(blocks[0] + refinement, 2 * d, heads[0], ffn_expansion)
        self.r_out = nn.Conv2d(2 * d, 3 * s2, 3, padding=1, bias=False)

        c = l_channels
        pad = {"padding_mode": "replicate"}
        self.l_net = nn.Sequential(
            nn.Conv2d(3 * s2, c, 3, padding=1, **pad),
            nn.Conv2d(c, c, 5, padding=2, **pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, **pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, **pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, s2, 1),
        )

    def reflectance_logits(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(self.embed(x))
        e2 = self.enc2(self.down12(e1))
        m = self.mid(self.down23(e2))
        d2 = self.dec2(self.reduce2(torch.cat([self.up32(m), e2], 1)))
        d1 = self.dec1(torch.cat([self.up21(d2), e1], 1))
        return self.r_out(d1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stem > 1:
            x = F.pixel_unshuffle(x, self.stem)
        x = x.contiguous(memory_format=torch.channels_last)
        r, l_map = self.reflectance_logits(x), self.l_net(x)
        if self.stem > 1:
            r, l_map = F.pixel_shuffle(r, self.stem), F.pixel_shuffle(l_map, self.stem)
        return torch.sigmoid(r.float()), torch.sigmoid(l_map.float())
