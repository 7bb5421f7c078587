"""LightenDiffusion's content-transfer decomposition network (CTDN) and its autoencoder.

Jiang, Luo, Fan, Liu, Han, Liu, "LightenDiffusion: Unsupervised Low-Light Image Enhancement
with Latent-Retinex Diffusion Models", ECCV 2024 (Sec. 3.1-3.2).

- ``ReconNet`` is the encoder and the decoder in one module (the official layout): a
  convolutional pyramid maps an image (B,3,H,W) in [0,1] to features at 1/2, 1/4, 1/8
  resolution (widths C, 2C, 4C), ``channel_down`` turns the 1/8 feature into the 3-channel
  latent (sigmoid, in (0,1)). Decoding maps a latent back to RGB, adding the low-light image's
  own pyramid features between the two residual blocks of each scale (skips).
- ``RetinexDecom`` splits a latent (B,3,h,w) into reflectance R (B,3,h,w) and illumination L
  (B,3,h,w; one sigmoid map repeated over 3 channels). Initial L = channel max, initial
  R = latent / max (max floored at 1e-4, where a latent that underflowed to 0 would make the
  official 0/0); residual blocks on each; a row-wise channel cross-attention (query from L,
  key/value from R) gives the new R features; a channel self-attention on the L features gives
  the "content" that is added to R and subtracted from L.

Module and parameter names follow the official checkpoint (``decom.ReconNet.*``,
``decom.retinex.*``), so its state dict loads strictly. LeakyReLU slope 0.01 throughout.
H and W must be multiples of 8 (the pipeline pads to its size multiple).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class ResBlock(nn.Module):
    """conv3 -> LeakyReLU -> conv3, plus a 1x1 conv of the input (always, even at equal width)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.model = nn.Sequential(_conv(cin, cout), nn.LeakyReLU(), _conv(cout, cout))
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.conv(x)


class Upsampling(nn.Module):
    """Stride-2 transposed conv (kernel 3, output padding 1) then LeakyReLU: doubles H, W."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x))


class ChannelDown(nn.Module):
    """4C -> 2C -> C -> 3 convs (LeakyReLU between), sigmoid: the latent in (0,1)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv0, self.conv1, self.conv2 = _conv(4 * c, 2 * c), _conv(2 * c, c), _conv(c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(self.conv0(x))))))


class ChannelUp(nn.Module):
    """3 -> C -> 2C -> 4C convs (LeakyReLU between, none after)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv0, self.conv1, self.conv2 = _conv(3, c), _conv(c, 2 * c), _conv(2 * c, 4 * c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(self.conv0(x)))))


class FeaturePyramid(nn.Module):
    """Two 5x5 convs, then (residual block, stride-2 conv) three times: features at 1/2, 1/4
    and 1/8 resolution with C, 2C, 4C channels. No activation between the stages."""

    def __init__(self, c: int):
        super().__init__()
        self.convs = nn.Sequential(_conv(3, c, 5), _conv(c, c, 5))
        self.block0, self.down0 = ResBlock(c, c), _conv(c, c, 3, 2)
        self.block1, self.down1 = ResBlock(c, 2 * c), _conv(2 * c, 2 * c, 3, 2)
        self.block2, self.down2 = ResBlock(2 * c, 4 * c), _conv(4 * c, 4 * c, 3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f2 = self.down0(self.block0(self.convs(x)))
        f4 = self.down1(self.block1(f2))
        f8 = self.down2(self.block2(f4))
        return f2, f4, f8


class ReconNet(nn.Module):
    """Encoder (``encode``) and skip decoder (``decode``) of the latent space."""

    def __init__(self, c: int):
        super().__init__()
        self.pyramid = FeaturePyramid(c)
        self.channel_down = ChannelDown(c)
        self.channel_up = ChannelUp(c)
        self.block_up0, self.block_up1 = ResBlock(4 * c, 4 * c), ResBlock(4 * c, 4 * c)
        self.up_sampling0 = Upsampling(4 * c, 2 * c)
        self.block_up2, self.block_up3 = ResBlock(2 * c, 2 * c), ResBlock(2 * c, 2 * c)
        self.up_sampling1 = Upsampling(2 * c, c)
        self.block_up4, self.block_up5 = ResBlock(c, c), ResBlock(c, c)
        self.up_sampling2 = Upsampling(c, c)
        self.conv2 = _conv(c, c)
        self.conv3 = nn.Conv2d(c, 3, 1)

    def encode(self, x: torch.Tensor):
        """x (B,3,H,W) in [0,1] -> (latent (B,3,H/8,W/8) in (0,1), skips (f2, f4, f8))."""
        skips = self.pyramid(x)
        return self.channel_down(skips[2]), skips

    def decode(self, z: torch.Tensor, skips) -> torch.Tensor:
        """Latent z (B,3,h,w) and the pyramid features of the image whose detail is kept ->
        (B,3,8h,8w) image (not clamped)."""
        f2, f4, f8 = skips
        h = self.up_sampling0(self.block_up1(self.block_up0(self.channel_up(z)) + f8))
        h = self.up_sampling1(self.block_up3(self.block_up2(h) + f4))
        h = self.up_sampling2(self.block_up5(self.block_up4(h) + f2))
        return self.conv3(F.leaky_relu(self.conv2(h)))


class DepthConv(nn.Module):
    """Depth-wise 3x3 conv then point-wise 1x1 conv (both with bias)."""

    def __init__(self, c: int):
        super().__init__()
        self.depth_conv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.point_conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class CrossAttention(nn.Module):
    """For each image row, attention over the channel axis: scores (C x C) are inner products
    along the width, scaled by 1/sqrt(C/heads). Query from ``x``, keys/values from ``ctx``.
    Returns (B,C,H,W), no residual."""

    def __init__(self, c: int, heads: int = 8):
        super().__init__()
        if c % heads:
            raise ValueError(f"CTDN width {c} must be a multiple of {heads}")
        self.scale = (c // heads) ** -0.5
        self.query, self.key, self.value = DepthConv(c), DepthConv(c), DepthConv(c)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        q = self.query(x).transpose(1, 2)  # (B,H,C,W)
        k = self.key(ctx).transpose(1, 2)
        v = self.value(ctx).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        return (attn @ v).transpose(1, 2).contiguous()


class SelfAttention(nn.Module):
    """Transposed (channel) self-attention with ``heads`` heads (Restormer's MDTA without the
    temperature): 1x1 then depth-wise 3x3 q/k/v, L2-normalised q and k, softmax over channels."""

    def __init__(self, c: int, heads: int = 8):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.qkv_dwconv = nn.Conv2d(3 * c, 3 * c, 3, padding=1, groups=3 * c)
        self.project_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        out = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        return self.project_out(out.reshape(b, c, h, w))


def prior_maps(z: torch.Tensor, headroom: float, sigma: float):
    """LIME-like initial decomposition of latents z (B,3,h,w): L0 = Gaussian-blurred (``sigma``
    latent pixels) channel maximum / ``headroom`` (at most 1), R0 = z / L0 (at most 1); both
    clamped to [1e-3, 1 - 1e-3] (inside the sigmoid's reach). A common gain on z scales L0 by it
    and leaves R0 unchanged (until L0 reaches 1)."""
    from lumen_cli.ops.filters import gaussian_blur

    lo, hi = 1e-3, 1 - 1e-3
    l0 = (gaussian_blur(z.amax(1, keepdim=True), sigma) / headroom).clamp(lo, hi)
    return (z / l0).clamp(lo, hi), l0


class RetinexDecom(nn.Module):
    """Latent (B,3,h,w) in (0,1) -> (R (B,3,h,w), L (B,3,h,w)) sigmoid maps (L: one map x3).

    ``prior_headroom`` (lumen addition, None = the paper's heads): the two output heads become
    residuals in logit space around ``prior_maps`` (R = sigmoid(logit R0 + head_R), likewise L),
    with zero-initialised last convs, so an untrained CTDN already returns the smoothed
    max-RGB decomposition, exposure-invariant in R, and training learns a correction."""

    def __init__(self, c: int, prior_headroom: float | None = None, prior_sigma: float = 2.0):
        super().__init__()
        self.prior_headroom, self.prior_sigma = prior_headroom, prior_sigma
        self.conv0 = _conv(3, c)
        self.blocks0 = nn.Sequential(ResBlock(c, c), ResBlock(c, c))
        self.conv1 = _conv(1, c)
        self.blocks1 = nn.Sequential(ResBlock(c, c), ResBlock(c, c))
        self.cross_attention = CrossAttention(c)
        self.self_attention = SelfAttention(c)
        self.conv0_1 = nn.Sequential(ResBlock(c, c), _conv(c, 3))
        self.conv1_1 = nn.Sequential(ResBlock(c, c), _conv(c, 1))
        if prior_headroom is not None:
            for head in (self.conv0_1[-1], self.conv1_1[-1]):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l0 = z.amax(dim=1, keepdim=True)
        r_feat = self.blocks0(self.conv0(z / l0.clamp_min(1e-4)))
        l_feat = self.blocks1(self.conv1(l0))
        r_feat = self.cross_attention(l_feat, r_feat)
        content = self.self_attention(l_feat)
        r = self.conv0_1(r_feat + content)
        lum = self.conv1_1(l_feat - content)
        if self.prior_headroom is not None:
            r0, lum0 = prior_maps(z.float(), self.prior_headroom, self.prior_sigma)
            r, lum = r + torch.logit(r0).to(r.dtype), lum + torch.logit(lum0).to(lum.dtype)
        return torch.sigmoid(r), torch.sigmoid(lum).expand(-1, 3, -1, -1)


class CTDN(nn.Module):
    """The encoder/decoder and the Retinex decomposition of the latent (official ``CTDN``).

    ``channels``: width C (official 64, a multiple of 8). ``prior_headroom``: see
    ``RetinexDecom`` (None: the paper's heads)."""

    def __init__(self, channels: int = 64, prior_headroom: float | None = None):
        super().__init__()
        self.ReconNet = ReconNet(channels)
        self.retinex = RetinexDecom(channels, prior_headroom)

    def encode(self, x: torch.Tensor):
        return self.ReconNet.encode(x)

    def decode(self, z: torch.Tensor, skips) -> torch.Tensor:
        return self.ReconNet.decode(z, skips)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (B,3,H,W) in [0,1] -> {'latent', 'R', 'L'} at (B,3,H/8,W/8)."""
        z, _ = self.encode(x)
        r, lum = self.retinex(z)
        return {"latent": z, "R": r, "L": lum}
