"""Diff-Retinex's published networks, with the official state-dict layout (``paper`` preset).

Yi, Xu, Zhang, Ma, "Diff-Retinex: Rethinking Low-light Image Enhancement with A Generative
Diffusion Model", ICCV 2023. Three checkpoints make the method:

- ``DecomNet`` (TDN): x (B,3,H,W) in [0,1], H, W multiples of 4 -> (R (B,3,H,W),
  L (B,1,H,W)), both sigmoid outputs. Reflectance: a three-level Restormer-style transformer
  whose attention mixes depth-wise 3/5/7 convolutions (``MultiScaleAttention``); illumination:
  a five-layer CNN with replicate padding.
- ``PaperDiffusion`` (Diff-RDA and Diff-IDA): ``denoise_fn``, an SR3 U-Net predicting the
  noise from [condition, x_t] and gamma = sqrt(alpha_bar); ``Unet_fn``, a refiner that maps
  [condition, x0 estimate] to a cleaner x0 (RDA: a Restormer, ``Refiner``; IDA: an SR3 U-Net
  without normalisation whose output adds its x0 input), and the twelve float32 schedule
  buffers of the official ``GaussianDiffusion``. The sampler is
  ``lumen_cli.methods.diff_retinex.paper_pipeline.official_ddim``.

Every module and parameter name follows the authors' checkpoints, so their state dicts load
strictly (``convert.py``); only widths are configurable. Written from the paper and the
behaviour recorded in lumen's parity fixture (no official code).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
)  # fmt: skip


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swish(x)


class NoiseLevelEncoding(nn.Module):
    """gamma (B,) -> (B, dim): [sin(gamma f_k), cos(gamma f_k)], f_k = 1e4^(-k / (dim/2))
    (SR3's continuous noise-level encoding, no x1000 scaling)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        n = self.dim // 2
        k = torch.arange(n, dtype=gamma.dtype, device=gamma.device) / n
        arg = gamma.reshape(-1, 1) * torch.exp(-math.log(1e4) * k)[None]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def noise_mlp(dim: int) -> nn.Sequential:
    """Encoding, Linear(d, 4d), Swish, Linear(4d, d): keys ``1.*`` and ``3.*``."""
    return nn.Sequential(
        NoiseLevelEncoding(dim), nn.Linear(dim, dim * 4), Swish(), nn.Linear(dim * 4, dim)
    )


class NoiseInject(nn.Module):
    """x + Linear(emb) per channel (keys ``noise_func.0.*``)."""

    def __init__(self, emb_dim: int, ch: int):
        super().__init__()
        self.noise_func = nn.Sequential(nn.Linear(emb_dim, ch))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return x + self.noise_func(emb).view(x.shape[0], -1, 1, 1).to(x.dtype)


# -- transformer blocks (TDN reflectance branch, RDA refiner) --------------------------------
class _LNBody(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at each pixel of (B,C,H,W), eps 1e-5, with bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = _LNBody(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.permute(0, 2, 3, 1)
        mu = y.mean(-1, keepdim=True)
        var = y.var(-1, keepdim=True, unbiased=False)
        y = (y - mu) / torch.sqrt(var + 1e-5) * self.body.weight + self.body.bias
        return y.permute(0, 3, 1, 2)


def channel_attention(q, k, v, heads: int, temperature: torch.Tensor) -> torch.Tensor:
    """Transposed (channel x channel) attention per head on (B,C,H,W) maps; q and k are
    L2-normalised over pixels, logits scaled by the learned per-head temperature."""
    b, c, h, w = q.shape
    q, k, v = (t.reshape(b, heads, c // heads, h * w) for t in (q, k, v))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1) * temperature).softmax(dim=-1)
    return (attn @ v).reshape(b, c, h, w)


class MultiScaleAttention(nn.Module):
    """TDN attention: 1x1 qkv, depth-wise 3x3/5x5/7x7 on it, each split into q|k|v; q, k, v
    each a 1x1 projection of their three scales; channel attention; 1x1 output. No biases."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        for s in (3, 5, 7):
            conv = nn.Conv2d(dim * 3, dim * 3, s, padding=s // 2, groups=dim * 3, bias=False)
            setattr(self, f"qkv_dwconv_{s}", conv)
        self.q_proj = nn.Conv2d(dim * 3, dim, 1, bias=False)
        self.k_proj = nn.Conv2d(dim * 3, dim, 1, bias=False)
        self.v_proj = nn.Conv2d(dim * 3, dim, 1, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        scales = [getattr(self, f"qkv_dwconv_{s}")(qkv).chunk(3, dim=1) for s in (3, 5, 7)]
        q, k, v = (
            proj(torch.cat([sc[i] for sc in scales], 1))
            for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj))
        )
        return self.project_out(channel_attention(q, k, v, self.heads, self.temperature))


class MDTA(nn.Module):
    """Restormer attention (RDA refiner): 1x1 qkv, depth-wise 3x3, channel attention, 1x1."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        return self.project_out(channel_attention(q, k, v, self.heads, self.temperature))


class FeedForward(nn.Module):
    """1x1 to int(2.66 dim), a dense 3x3 (named ``dwconv`` but not depth-wise), GELU, 1x1."""

    def __init__(self, dim: int, factor: float = 2.66):
        super().__init__()
        hidden = int(dim * factor)
        self.project_in = nn.Conv2d(dim, hidden, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(F.gelu(self.dwconv(self.project_in(x))))


class TransformerBlock(nn.Module):
    """x + attn(LN(x)), then x + ffn(LN(x))."""

    def __init__(self, dim: int, heads: int, multi_scale: bool):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = (MultiScaleAttention if multi_scale else MDTA)(dim, heads)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = FeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class _Resample(nn.Module):
    """3x3 conv (no bias) then pixel (un)shuffle by 2: keys ``body.0.*``."""

    def __init__(self, cin: int, cout: int, shuffle: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), shuffle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Restormer(nn.Module):
    """Three-level transformer U-Net (enc1, enc2, enc3 -> dec3 -> dec2 -> dec1 at 2 dim,
    refinement, 3x3 output conv), no latent level, no global residual.

    ``noise_dim`` > 0 (RDA refiner): a noise-level MLP, and ``NoiseInject`` after each block of
    enc1/enc2/dec2/dec1 and after every second block of enc3/dec3 (inside those Sequentials).
    """

    def __init__(self, in_ch, out_ch, dim, blocks, refinement, heads, dec1_heads,
                 multi_scale, noise_dim=0):  # fmt: skip
        super().__init__()
        self.noise = noise_dim > 0
        if self.noise:
            self.noise_level_mlp = noise_mlp(noise_dim)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_ch, dim, 3, padding=1, bias=False)

        def level(d, n, h, every):
            mods = []
            for i in range(n):
                mods.append(TransformerBlock(d, h, multi_scale))
                if self.noise and (i + 1) % every == 0:
                    mods.append(NoiseInject(noise_dim, d))
            return nn.Sequential(*mods)

        b = blocks
        self.encoder_level1 = level(dim, b[0], heads[0], 1)
        self.down1_2 = _Resample(dim, dim // 2, nn.PixelUnshuffle(2))
        self.encoder_level2 = level(dim * 2, b[1], heads[1], 1)
        self.down2_3 = _Resample(dim * 2, dim, nn.PixelUnshuffle(2))
        self.encoder_level3 = level(dim * 4, b[2], heads[2], 2)
        self.decoder_level3 = level(dim * 4, b[2], heads[2], 2)
        self.up3_2 = _Resample(dim * 4, dim * 8, nn.PixelShuffle(2))
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
        self.decoder_level2 = level(dim * 2, b[1], heads[1], 1)
        self.up2_1 = _Resample(dim * 2, dim * 4, nn.PixelShuffle(2))
        self.decoder_level1 = level(dim * 2, b[0], dec1_heads, 1)
        self.refinement = level(dim * 2, refinement, heads[0], 10**9)
        self.output = nn.Conv2d(dim * 2, out_ch, 3, padding=1, bias=False)

    @staticmethod
    def _run(seq: nn.Sequential, x: torch.Tensor, emb) -> torch.Tensor:
        for m in seq:
            x = m(x, emb) if isinstance(m, NoiseInject) else m(x)
        return x

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.noise_level_mlp(gamma) if self.noise else None
        e1 = self._run(self.encoder_level1, self.patch_embed.proj(x), emb)
        e2 = self._run(self.encoder_level2, self.down1_2(e1), emb)
        e3 = self._run(self.encoder_level3, self.down2_3(e2), emb)
        d3 = self._run(self.decoder_level3, e3, emb)
        d2 = self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1))
        d2 = self._run(self.decoder_level2, d2, emb)
        d1 = self._run(self.decoder_level1, torch.cat([self.up2_1(d2), e1], 1), emb)
        return self.output(self._run(self.refinement, d1, emb))


class DecomNet(nn.Module):
    """TDN: ``forward(x) -> (R, L)``; x (B,3,H,W) in [0,1] with H, W multiples of 4.

    Keys: ``net1_conv0``, ``net1_convs.{0,2,4}``, ``net1_recon`` (illumination CNN, width
    ``l_channels``) and ``TDN_R.*`` (reflectance transformer of width ``dim``)."""

    def __init__(self, dim: int = 24, l_channels: int = 32):
        super().__init__()
        c = l_channels
        self.net1_conv0 = nn.Conv2d(3, c, 3, padding=1, padding_mode="replicate")
        self.net1_convs = nn.Sequential(
            nn.Conv2d(c, c, 5, padding=2, padding_mode="replicate"), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
        )  # fmt: skip
        self.net1_recon = nn.Conv2d(c, 1, 1)
        self.TDN_R = Restormer(3, 3, dim, [1, 2, 2], 4, [1, 2, 4], 1, multi_scale=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L = torch.sigmoid(self.net1_recon(self.net1_convs(self.net1_conv0(x))))
        return torch.sigmoid(self.TDN_R(x)), L
