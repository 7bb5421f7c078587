"""LLDiffusion's degradation-aware U-Net (Wang et al., Pattern Recognition 2025, Sec. 3.2).

A DDPM U-Net (Ho et al. 2020; GroupNorm(32, eps 1e-6)-swish-conv residual blocks, attention,
zero-pad + stride-2 downsampling, nearest x2 + conv upsampling, concatenated skips) whose up
path takes the degradation features: up level i (i = 1..L-1, deepest first) gets feature i-1
when there is one, fused as cat([h, feature]) followed, in ``cattn`` mode, by a channel
attention (average pool, 1x1 conv to C/16, ReLU, 1x1 conv, sigmoid) multiplied in. With
K = L features the last one is fused before the output head.

The same class is the diffusion denoiser (``time_embed``: sinusoidal step embedding, MLP,
added in every residual block; input cat(x_t, low, colour map), 9 channels, output eps) and
the training-only generator (no time embedding, input the normal-light image, output the
low-light one). ``stem`` > 1 (lumen's lite preset only) wraps the U-Net in a pixel
unshuffle / shuffle by that factor, so it runs at 1/stem resolution. ``norm="pixel"``,
``mid_attn=False`` and ``fuse_mode="cat"`` (the lite preset's ``LITE_LOCAL``) leave no operation
that reads the whole input (no GroupNorm statistics, spatial attention or average pool), so a
tile's output depends only on the pixels within the receptive field and tiles agree with the
whole image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lumen_cli.nets.norm import ChannelNorm


def _norm(c: int, kind: str = "group") -> nn.Module:
    """``group``: the official GroupNorm(32, eps 1e-6); ``pixel``: a LayerNorm over channels
    at each pixel (lumen's lite option), which needs no statistics of the whole tile."""
    if kind == "pixel":
        return ChannelNorm(c)
    if kind != "group":
        raise ValueError(f"norm must be 'group' or 'pixel', got {kind!r}")
    return nn.GroupNorm(32, c, eps=1e-6)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps as floats -> (B, dim): [sin | cos] of t * 10000^(-k/(dim/2 - 1))."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    ang = t.float().view(-1, 1) * torch.exp(-math.log(10000.0) / (half - 1) * k).view(1, -1)
    return torch.cat([ang.sin(), ang.cos()], 1)


class Block(nn.Module):
    """norm, swish, conv, (+ Linear(swish(temb))), norm, swish, conv; 1x1 ``nin_shortcut``
    when the widths differ; residual. ``temb_ch`` 0: no time input; ``norm``: see ``_norm``."""

    def __init__(self, cin: int, cout: int, temb_ch: int = 0, norm: str = "group"):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, norm), nn.Conv2d(cin, cout, 3, padding=1)
        if temb_ch:
            self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2, self.conv2 = _norm(cout, norm), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.temb_proj(F.silu(temb)).unsqueeze(-1).unsqueeze(-1)
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class Attn(nn.Module):
    """Single-head softmax attention over pixels, 1x1 q/k/v/proj_out, residual."""

    def __init__(self, c: int, norm: str = "group"):
        super().__init__()
        self.norm = _norm(c, norm)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        y = self.norm(x)
        q, k, v = (m(y).flatten(2).transpose(1, 2).unsqueeze(1) for m in (self.q, self.k, self.v))
        o = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2)
        return x + self.proj_out(o.reshape(b, c, hh, ww))


class _Resample(nn.Module):
    def __init__(self, c: int, down: bool):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(c, c, 3, stride=2 if down else 1, padding=0 if down else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ChannelAttention(nn.Module):
    """x * sigmoid(conv(relu(conv(avgpool(x))))), reduction 16 (keys ``attention.1/3``)."""

    def __init__(self, c: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // 16, 1), nn.ReLU(),
            nn.Conv2d(c // 16, c, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class _Fuse(nn.Module):
    """Concatenation fusion; in ``cattn`` mode ``cattns[key]`` reweights the channels."""

    def __init__(self, widths: dict[str, int], mode: str):
        super().__init__()
        self.mode = mode
        if mode == "cattn":
            self.cattns = nn.ModuleDict({k: ChannelAttention(c) for k, c in widths.items()})
        elif mode != "cat":
            raise ValueError(f"fuse_mode must be 'cat' or 'cattn', got {mode!r}")

    def forward(self, key: str, h: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        h = torch.cat([h, feat.to(h.dtype)], 1)
        return self.cattns[key](h) if self.mode == "cattn" else h


class _Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.block, self.attn = nn.ModuleList(), nn.ModuleList()


class _Up(nn.ModuleList):
    """Up levels ``0..L-1`` (deepest first) plus ``fuse`` (the official ``up.fuse``)."""

    def levels(self) -> list[_Level]:
        return [m for k, m in self._modules.items() if k != "fuse"]


class DiffusionUNet(nn.Module):
    """forward(x (B,in_channels,H,W), t (B,) or (1,) float steps or None, feats list) ->
    (B,out_ch,H,W). ``feat_channels``: widths of the K injected features (K <= L).

    Inputs whose last channels stay the same over the sampling steps (the condition) can be
    given once: ``pre = cond_response(fixed)`` (the first convolution's response to those
    channels), then ``forward(x_t, t, feats, pre)`` with only the changing first channels;
    the first convolution is linear, so this is the same net, without convolving the condition
    at every step."""

    def __init__(
        self,
        in_channels: int = 9,
        out_ch: int = 3,
        ch: int = 64,
        ch_mult: list[int] = (1, 1, 2, 2, 4, 4),
        num_res_blocks: int = 2,
        attn_resolutions: list[int] = (8,),
        feat_channels: list[int] = (512, 512, 256),
        fuse_mode: str = "cattn",
        time_embed: bool = True,
        stem: int = 1,
        prediction: str = "eps",
        anchor: float | None = None,
        norm: str = "group",
        mid_attn: bool = True,
    ):
        super().__init__()
        self.anchor = anchor  # lite: σ of the pipeline's low-frequency anchor (None: default)
        L, nrb = len(ch_mult), num_res_blocks
        feats = list(feat_channels)
        self.ch, self.L, self.K, self.nrb = ch, L, len(feats), nrb
        self.stem, self.prediction, self.time_embed = stem, prediction, time_embed
        self.size_multiple = stem * 2 ** (L - 1)
        tch = 4 * ch if time_embed else 0
        if time_embed:
            self.temb = nn.Module()
            self.temb.dense = nn.ModuleList([nn.Linear(ch, tch), nn.Linear(tch, tch)])
        self.conv_in = nn.Conv2d(in_channels * stem * stem, ch, 3, padding=1)
        widths, c = [ch], ch  # widths of the kept skips
        self.down = nn.ModuleList()
        for i, m in enumerate(ch_mult):
            lv = _Level()
            for _ in range(nrb):
                lv.block.append(Block(c, ch * m, tch, norm))
                c = ch * m
                if 2 ** (L - 1 - i) in attn_resolutions:
                    lv.attn.append(Attn(c, norm))
                widths.append(c)
            if i != L - 1:
                lv.downsample = _Resample(c, True)
                widths.append(c)
            self.down.append(lv)
        self.mid = nn.Module()
        self.mid.block_1 = Block(c, c, tch, norm)
        self.mid.attn_1 = Attn(c, norm) if mid_attn else nn.Identity()
        self.mid.block_2 = Block(c, c, tch, norm)
        self.up, fuse_w = _Up(), {}
        for i in range(L):
            fuse_w[str(i)] = c + (feats[i - 1] if 1 <= i <= self.K and i <= L - 1 else 0)
            c = fuse_w[str(i)] if i >= 1 else c
            lv, out = _Level(), ch * ch_mult[L - 1 - i]
            for _ in range(nrb + 1):
                lv.block.append(Block(c + widths.pop(), out, tch, norm))
                c = out
                if 2**i in attn_resolutions:
                    lv.attn.append(Attn(c, norm))
            if i != L - 1:
                lv.upsample = _Resample(c, False)
            self.up.append(lv)
        self.up.fuse = _Fuse(fuse_w, fuse_mode)
        # the final fusion (K = L); with K < L the official code still builds one, unused
        final = c + feats[-1] if self.K == L else 2 * feats[-1]
        self.fuse = _Fuse({"1": final}, fuse_mode)
        c = c + feats[-1] if self.K == L else c
        self.norm_out = _norm(c, norm)
        self.conv_out = nn.Conv2d(c, out_ch * stem * stem, 3, padding=1)

    def cond_response(self, fixed: torch.Tensor) -> torch.Tensor:
        """The first convolution's response (with its bias) to the last ``fixed.shape[1]``
        input channels, (B,ch,H/stem,W/stem): the ``pre`` of ``forward``."""
        k = fixed.shape[1] * self.stem**2
        if self.stem > 1:
            fixed = F.pixel_unshuffle(fixed, self.stem)
        w = self.conv_in.weight
        return F.conv2d(fixed, w[:, w.shape[1] - k :], self.conv_in.bias, padding=1)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | None,
        feats: list[torch.Tensor],
        pre: torch.Tensor | None = None,
    ):
        temb = None
        if self.time_embed:
            d0, d1 = self.temb.dense
            temb = d1(F.silu(d0(step_embedding(t, self.ch).to(x.dtype))))
        if self.stem > 1:
            x = F.pixel_unshuffle(x, self.stem)
        if pre is None:
            hs = [self.conv_in(x)]
        else:  # x: the changing channels only; pre: the response to the others
            w = self.conv_in.weight[:, : x.shape[1]]
            hs = [F.conv2d(x, w, None, padding=1) + pre]
        for lv in self.down:
            for j, blk in enumerate(lv.block):
                h = blk(hs[-1], temb)
                hs.append(lv.attn[j](h) if len(lv.attn) else h)
            if hasattr(lv, "downsample"):
                hs.append(lv.downsample(hs[-1]))
        h = self.mid.block_1(hs[-1], temb)
        h = self.mid.block_2(self.mid.attn_1(h), temb)
        for i, lv in enumerate(self.up.levels()):
            if 1 <= i <= self.K and i <= self.L - 1:
                h = self.up.fuse(str(i), h, feats[i - 1])
            for j, blk in enumerate(lv.block):
                h = blk(torch.cat([h, hs.pop()], 1), temb)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        if self.K == self.L:
            h = self.fuse("1", h, feats[-1])
        h = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(h, self.stem) if self.stem > 1 else h

    def temb_mlp(self, t: torch.Tensor) -> torch.Tensor:
        """The time-embedding MLP output (before the per-block swish), (B, 4 ch)."""
        d0, d1 = self.temb.dense
        return d1(F.silu(d0(step_embedding(t, self.ch))))
