"""SR3-style conditional U-Net denoiser for Diff-Retinex's RDA and IDA.

As in SR3 (Saharia et al.) and the official Diff-Retinex code, the denoiser is a U-Net of
residual blocks with the noise level fed through a sinusoidal embedding and an MLP, and
attention at the lowest resolution. Two changes keep it fast and tileable on a CPU:

- the condition (the low-light maps) goes through its own small encoder whose multi-scale
  features are *added* to the trunk at each level: ``encode(cond)`` runs once per image/tile,
  and each sampling step runs only ``forward(x_t, gamma, feats)``. (SR3 concatenates the
  condition to x_t, which costs the condition's convolutions at every step.)
- attention is MDLA-style channel attention (linear in pixels) rather than global spatial
  attention, and normalisation is per pixel over channels, so no op needs the whole image.

Shapes: x_t (B,in_ch,H,W) and cond (B,cond_ch,H,W) in [-1,1]; gamma (B,) = sqrt(alpha_bar) in
(0,1]; output (B,out_ch,H,W) in the parametrisation the model was trained for (x0, eps or v).
H and W must be multiples of ``stem * 2**(len(mults)-1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lumen_cli.nets.tdn import ChannelNorm, channel_attention


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
