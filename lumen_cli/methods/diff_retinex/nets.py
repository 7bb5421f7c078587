"""Diff-Retinex's networks (Yi, Xu, Zhang, Ma, ICCV 2023): the Transformer Decomposition Network
(TDN) and the SR3-style conditional U-Net denoiser of the RDA and IDA.

TDN, after the paper (and its official code): a reflectance branch that is a small
Restormer-style U-Net whose attention (MDLA, multi-head depth-wise convolution layer attention)
mixes depth-wise 3x3, 5x5 and 7x7 convolutions of Q, K and V and attends *across channels* --
the attention matrix is (C/h x C/h) per head, so the cost grows linearly with the pixel count
and any image size works, tiled or not; and an illumination branch that is a small CNN. Both
outputs pass a sigmoid. ``TDN(x) -> (R, L)``: x (B,3,H,W) float in [0,1] sRGB, H and W
multiples of 4; R (B,3,H,W) in (0,1) reflectance, L (B,1,H,W) in (0,1) illumination, x ~ R * L.

The denoiser (``CondUNet``), as in SR3 (Saharia et al.) and the official Diff-Retinex code: a
U-Net of residual blocks with the noise level fed through a sinusoidal embedding and an MLP,
and attention at the lowest resolution. Two changes keep it fast and tileable on a CPU:

- the condition (the low-light maps) goes through its own small encoder whose multi-scale
  features are *added* to the trunk at each level: ``encode(cond)`` runs once per image/tile,
  and each sampling step runs only ``forward(x_t, gamma, feats)``. (SR3 concatenates the
  condition to x_t, which costs the condition's convolutions at every step.)
- attention is MDLA-style channel attention (linear in pixels) rather than global spatial
  attention, and normalisation is per pixel over channels, so no op needs the whole image.

Denoiser shapes: x_t (B,in_ch,H,W) and cond (B,cond_ch,H,W) in [-1,1]; gamma (B,) =
sqrt(alpha_bar) in (0,1]; output (B,out_ch,H,W) in the parametrisation the model was trained
for (x0, eps or v). H and W must be multiples of ``stem * 2**(len(mults)-1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lumen_cli.nets.norm import ChannelNorm


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
        base = self.qkv(x)
        # fuse_q(cat of the kernels' q parts), and so for k and v, computed without the
        # concatenations: kernel i's (q, k, v) maps times the i-th column blocks of the three
        # fuse weights, one 1x1 convolution with 3 groups per kernel, summed over the kernels
        dim, fuse = self.fuse_q.out_channels, (self.fuse_q, self.fuse_k, self.fuse_v)
        qkv = None
        for i, conv in enumerate(self.dw):
            w = torch.cat([f.weight[:, i * dim : (i + 1) * dim] for f in fuse])
            part = F.conv2d(conv(base), w.to(memory_format=torch.channels_last), groups=3)
            qkv = part if qkv is None else qkv + part
        q, k, v = qkv.chunk(3, dim=1)
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


# -- the RDA / IDA denoiser (SR3-style conditional U-Net) -----------------------------
def noise_embedding(gamma: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the continuous noise level gamma (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=gamma.device) / half)
    arg = gamma.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class ResBlock(nn.Module):
    """norm -> SiLU -> conv3 (+ noise-level shift) -> norm -> SiLU -> conv3, residual."""

    def __init__(self, cin: int, cout: int, emb_dim: int | None):
        super().__init__()
        self.norm1 = ChannelNorm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout) if emb_dim else None
        self.norm2 = ChannelNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None and emb is not None:
            h = h + self.emb(emb).to(h.dtype)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class ChannelAttention(nn.Module):
    """Residual multi-head channel (transposed) attention with depth-wise conv Q, K, V."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        while dim % heads:
            heads -= 1
        self.heads = heads
        self.norm = ChannelNorm(dim)
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.dw = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.dw(self.qkv(self.norm(x))).chunk(3, dim=1)
        return x + self.out(channel_attention(q, k, v, self.heads, self.temperature))


class CondUNet(nn.Module):
    """Conditional U-Net denoiser (see module docstring).

    ``stem`` > 1 pixel-unshuffles the input first (the U-Net then runs at H/stem), which is
    how the RDA stays fast at full resolution; ``mults`` are the width multipliers per level;
    ``attn_levels`` the level indices with channel attention (the last level always has it in
    the middle block). ``prediction`` (eps | x0 | v), the linear beta schedule (``n_train``,
    ``beta_start``, ``beta_end``) and ``work_size`` (the long side the net runs at, for the
    IDA; None: full resolution) describe how the net is used; they travel with its weights.
    ``residual`` = k > 0 (x0 prediction only) adds the first k condition channels to the
    output, so the net predicts a correction of the low-light map rather than the map.
    """

    def __init__(
        self,
        in_ch: int = 3,
        cond_ch: int = 4,
        out_ch: int = 3,
        inner: int = 32,
        mults: tuple[int, ...] | list[int] = (1, 2, 2),
        res_blocks: int = 1,
        attn_levels: tuple[int, ...] | list[int] = (),
        heads: int = 4,
        stem: int = 2,
        cond_blocks: int = 1,
        prediction: str = "eps",
        n_train: int = 1000,
        beta_start: float = 1e-6,
        beta_end: float = 1e-2,
        work_size: int | None = None,
        residual: int = 0,
        base_gain: float = 0.0,
    ):
        super().__init__()
        # how the net was trained (read by the pipeline; stored with the weights)
        self.prediction = prediction
        self.schedule = (int(n_train), float(beta_start), float(beta_end))
        self.work_size = work_size
        self.residual = residual
        self.base_gain = float(base_gain)  # read by the pipeline (condition brightening)
        if residual and prediction != "x0":
            raise ValueError("CondUNet: residual needs prediction='x0'")
        self.stem = stem
        self.size_multiple = stem * 2 ** (len(mults) - 1)
        widths = [inner * m for m in mults]
        emb = inner * 4
        self.emb_dim = inner
        self.emb_mlp = nn.Sequential(nn.Linear(inner, emb), nn.SiLU(), nn.Linear(emb, emb))
        s2 = stem * stem

        # condition encoder: run once per image / tile
        self.c_in = nn.Conv2d(cond_ch * s2, widths[0], 3, padding=1)
        self.c_levels = nn.ModuleList()
        self.c_down = nn.ModuleList()
        for i, w in enumerate(widths):
            self.c_levels.append(nn.ModuleList(ResBlock(w, w, None) for _ in range(cond_blocks)))
            if i < len(widths) - 1:  # stride-2 conv that also widens to the next level
                self.c_down.append(nn.Conv2d(w, widths[i + 1], 3, stride=2, padding=1))

        # trunk: run at every sampling step
        self.x_in = nn.Conv2d(in_ch * s2, widths[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.enc_attn = nn.ModuleList()
        self.down = nn.ModuleList()
        skips = []
        for i, w in enumerate(widths):
            self.enc.append(nn.ModuleList(ResBlock(w, w, emb) for _ in range(res_blocks)))
            self.enc_attn.append(ChannelAttention(w, heads) if i in attn_levels else nn.Identity())
            skips.append(w)
            if i < len(widths) - 1:
                self.down.append(nn.Conv2d(w, widths[i + 1], 3, stride=2, padding=1))
        cprev = widths[-1]
        self.mid1 = ResBlock(cprev, cprev, emb)
        self.mid_attn = ChannelAttention(cprev, heads)
        self.mid2 = ResBlock(cprev, cprev, emb)
        self.dec = nn.ModuleList()
        self.dec_attn = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(len(widths))):
            w = widths[i]
            self.dec.append(ResBlock(cprev + skips[i], w, emb))
            self.dec_attn.append(ChannelAttention(w, heads) if i in attn_levels else nn.Identity())
            cprev = w
            if i > 0:
                self.up.append(nn.Conv2d(w, w, 3, padding=1))
        self.out_norm = ChannelNorm(cprev)
        self.out = nn.Conv2d(cprev, out_ch * s2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, self.stem) if self.stem > 1 else x
        return x.contiguous(memory_format=torch.channels_last)

    def encode(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """Condition features per level: list of (B, widths[i], H/stem/2^i, W/stem/2^i), then
        (when ``residual``) the map added to the output, cond[:, :residual]."""
        h = self.c_in(self._unshuffle(cond))
        feats = []
        for i, blocks in enumerate(self.c_levels):
            for blk in blocks:
                h = blk(h)
            feats.append(h)
            if i < len(self.c_down):
                h = self.c_down[i](h)
        if self.residual:
            feats.append(cond[:, : self.residual].float())
        return feats

    def forward(
        self, x: torch.Tensor, gamma: torch.Tensor, feats: list[torch.Tensor]
    ) -> torch.Tensor:
        emb = self.emb_mlp(noise_embedding(gamma, self.emb_dim).to(x.dtype))
        h = self.x_in(self._unshuffle(x))
        skips = []
        for i, blocks in enumerate(self.enc):
            h = h + feats[i].to(h.dtype)
            for blk in blocks:
                h = blk(h, emb)
            h = self.enc_attn[i](h)
            skips.append(h)
            if i < len(self.down):
                h = self.down[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for j, blk in enumerate(self.dec):
            h = blk(torch.cat([h, skips.pop()], 1), emb)
            h = self.dec_attn[j](h)
            if j < len(self.up):
                h = self.up[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.out(F.silu(self.out_norm(h)))
        out = F.pixel_shuffle(out, self.stem) if self.stem > 1 else out
        return out.float() + feats[-1] if self.residual else out
