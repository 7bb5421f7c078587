"""The latent diffusion U-Net of LightenDiffusion's LRDM (Jiang et al., ECCV 2024, Sec. 3.3).

The DDPM U-Net of Ho et al. (2020) as published with DDIM (Song et al., 2021): GroupNorm-swish-
conv residual blocks with the timestep embedding added after the first conv, attention blocks,
nearest x2 upsampling + conv, zero-pad (right/bottom) + stride-2 conv downsampling, skip
concatenation on the way up. LightenDiffusion conditions it by concatenation: the input is
``cat([cond, x_t])`` (B,6,h,w), the condition first, both in [-1,1]; the output is the noise eps
(B,3,h,w), as in the paper. ``pred = "x0"`` (lumen option, the lite preset) marks a U-Net trained
to output the clean latent x0 instead (the x0 parameterisation of Ho et al. 2020, Sec. 3.2);
the architecture is the same, the sampler converts. The timestep ``t`` is a float tensor (B,)
holding the integer step 0..T-1.

Attention sits at the level indices ``attn_levels`` (official: level 2 only, not chosen by
resolution) and in the middle block. It is global softmax attention over the pixels of that
level (``F.scaled_dot_product_attention``), so the pipeline tiles large images.
Parameter names follow the official checkpoint (``Unet.*``). h, w: multiples of
2**(len(ch_mult)-1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) float timesteps -> (B, dim): sin then cos of t * exp(-ln(10000) i / (dim/2 - 1))."""
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000) / (half - 1))
    )
    arg = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, c), c, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb_ch: int, groups: int = 32):
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2 = _norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None].to(h.dtype)
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Residual single-head spatial self-attention with 1x1 q, k, v, proj_out."""

    def __init__(self, c: int, groups: int = 32):
        super().__init__()
        self.norm = _norm(c, groups)
        self.q, self.k, self.v = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).reshape(b, 1, c, h * w).transpose(-1, -2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B,1,hw,C), scale 1/sqrt(C)
        return x + self.proj_out(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: ``block`` and ``attn`` lists, optional resampler."""

    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class DiffusionUNet(nn.Module):
    """Conditional U-Net. ``forward(x, t)``: x (B, 2*in_channels, h, w) = cat(cond, x_t); t (B,)
    float step index -> (B, out_ch, h, w): eps (``pred = "eps"``, the paper) or x0 (``"x0"``)."""

    def __init__(
        self,
        ch: int = 64,
        ch_mult: tuple[int, ...] = (1, 2, 3, 4),
        num_res_blocks: int = 2,
        in_channels: int = 3,
        out_ch: int = 3,
        attn_levels: tuple[int, ...] = (2,),
        groups: int = 32,
        pred: str = "eps",
    ):
        super().__init__()
        if pred not in ("eps", "x0"):
            raise ValueError(f"pred must be 'eps' or 'x0', got {pred!r}")
        self.pred = pred
        ch_mult, attn_levels = tuple(ch_mult), tuple(attn_levels)
        self.ch, self.num_res_blocks, self.n_levels = ch, num_res_blocks, len(ch_mult)
        self.size_multiple = 2 ** (len(ch_mult) - 1)
        temb_ch = 4 * ch
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])
        self.conv_in = nn.Conv2d(2 * in_channels, ch, 3, padding=1)
        in_mult = (1,) + ch_mult
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(ch_mult):
            lvl, cout = _Level(), ch * m
            cin = ch * in_mult[i]
            for _ in range(num_res_blocks):
                lvl.block.append(ResnetBlock(cin, cout, temb_ch, groups))
                cin = cout
                if i in attn_levels:
                    lvl.attn.append(AttnBlock(cin, groups))
            if i != self.n_levels - 1:
                lvl.downsample = Downsample(cin)
            self.down.append(lvl)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(cin, cin, temb_ch, groups)
        self.mid.attn_1 = AttnBlock(cin, groups)
        self.mid.block_2 = ResnetBlock(cin, cin, temb_ch, groups)
        ups = []
        for i in reversed(range(self.n_levels)):
            lvl, cout = _Level(), ch * ch_mult[i]
            for j in range(num_res_blocks + 1):
                skip = ch * (in_mult[i] if j == num_res_blocks else ch_mult[i])
                lvl.block.append(ResnetBlock(cin + skip, cout, temb_ch, groups))
                cin = cout
                if i in attn_levels:
                    lvl.attn.append(AttnBlock(cin, groups))
            if i != 0:
                lvl.upsample = Upsample(cin)
            ups.insert(0, lvl)
        self.up = nn.ModuleList(ups)
        self.norm_out = _norm(cin, groups)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, padding=1)

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) float steps -> (B, 4*ch) timestep embedding (Linear, swish, Linear)."""
        e = timestep_embedding(t, self.ch)
        return self.temb.dense[1](F.silu(self.temb.dense[0](e)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.embed(t)
        hs = [self.conv_in(x)]
        for i, lvl in enumerate(self.down):
            for j, block in enumerate(lvl.block):
                h = block(hs[-1], temb)
                hs.append(lvl.attn[j](h) if len(lvl.attn) else h)
            if i != self.n_levels - 1:
                hs.append(lvl.downsample(hs[-1]))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
        for i in reversed(range(self.n_levels)):
            lvl = self.up[i]
            for j, block in enumerate(lvl.block):
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if i != 0:
                h = lvl.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
