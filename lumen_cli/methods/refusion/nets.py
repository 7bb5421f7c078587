"""Refusion's networks (Luo et al., "Image Restoration with Mean-Reverting Stochastic
Differential Equations", ICML 2023; "Refusion: Enabling Large-Size Realistic Image Restoration
with Latent-Space Diffusion Models", CVPRW 2023).

- ``ConditionalNAFNet``: the IR-SDE noise network. A NAFNet U-Net (Chen et al., ECCV 2022)
  whose input is cat(x_t - mu, mu) and whose every block is modulated (FiLM: scale and shift of
  both layer norms) by a sinusoidal embedding of the integer timestep t. It predicts the noise
  of x_t. ``global_skip`` is the latent (Refusion) variant, whose ending conv reads the decoder
  output plus the intro features; the pixel (IR-SDE deshadow) variant has no such skip.
- ``LatentUNet``: Refusion's auto-encoder. Its encoder maps an image to a latent at 1/8 size
  and keeps the intermediate maps ("hidden"); its decoder takes a latent plus the hidden maps of
  the *degraded* image as skips, so a clean latent can be decoded with the degraded image's
  detail ("latent replacing").
- ``PoolLatent`` (lumen's lite): a fixed, parameter-free stand-in for that auto-encoder with the
  same interface: the latent is the image averaged over factor x factor blocks, and decoding
  adds the latent's change, upsampled, to the image the skips came from.

Module and parameter names follow the official checkpoints' key layout, so their state dicts
load strictly. Shapes: images (B,3,H,W) in [0,1]; latents (B,embed_dim,H/8,W/8) (of the image
padded to a multiple of 16).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ChannelNorm(nn.Module):
    """Gain-only layer norm over channels at each pixel (biased variance; eps 1e-5 in fp32,
    1e-3 in lower precision, as the official code)."""

    def __init__(self, c: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        var = x.var(dim=1, unbiased=False, keepdim=True)
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * (var + eps).rsqrt() * self.g


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them (NAFNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class SinusoidalEmbedding(nn.Module):
    """t (B,) -> (B, dim): [sin(t f_k), cos(t f_k)], f_k = exp(-k ln(10000) / (dim/2 - 1))."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        f = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        arg = t.float()[:, None] * f[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class TimeNAFBlock(nn.Module):
    """NAFNet block with FiLM from the time vector (B, temb): the block MLP gives, per channel,
    shift/scale for the first (attention) branch and shift/scale for the feed-forward branch."""

    def __init__(self, c: int, temb: int):
        super().__init__()
        self.mlp = nn.Sequential(SimpleGate(), nn.Linear(temb // 2, 4 * c))
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = ChannelNorm(c)
        self.norm2 = ChannelNorm(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        film = self.mlp(temb)[:, :, None, None]
        shift_att, scale_att, shift_ffn, scale_ffn = film.chunk(4, dim=1)
        h = self.norm1(x) * (1 + scale_att) + shift_att
        h = self.sg(self.conv2(self.conv1(h)))
        h = self.conv3(h * self.sca(h))
        y = x + self.beta * h
        h = self.norm2(y) * (1 + scale_ffn) + shift_ffn
        h = self.conv5(self.sg(self.conv4(h)))
        return y + self.gamma * h


class BlockSeq(nn.ModuleList):
    """A list of ``TimeNAFBlock``s applied in order with the same time vector."""

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        for blk in self:
            x = blk(x, temb)
        return x


class ConditionalNAFNet(nn.Module):
    """IR-SDE noise network: (x_t, mu, t) -> predicted noise, same shape as x_t.

    x_t, mu: (B, img_channel, H, W) (images or latents, any range); t: int or (B,) timesteps
    (the raw integer index 1..T). Maps are zero-padded to a multiple of 2^len(enc_blk_nums)
    and cropped back. Paper (pixel): width 64, enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1],
    76,608,387 parameters.

    ``prediction`` says what the output means (the net itself is the same): ``"noise"`` (the
    paper: ε of x_t) or ``"x0"`` (lumen's lite: x_0 − μ, the clean end relative to the mean;
    ``train.predict`` turns it into ε for the samplers).

    ``t_max`` (lumen's lite; None: the paper's T): the largest timestep the net is trained on;
    its reverse process starts there, from μ plus that step's noise (``pipeline``), and the
    SDE loss draws t from 1..t_max (``train.sde_loss``).

    ``stem`` s > 1 (lumen's pixel lite; the paper has 1): the inputs are pixel-unshuffled by s
    before ``intro`` and the output pixel-shuffled back, so the U-Net runs at 1/s size on
    img_channel·s² channels (maps are then padded to a multiple of s·2^levels).
    """

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 64,
        enc_blk_nums: tuple[int, ...] = (1, 1, 1, 28),
        middle_blk_num: int = 1,
        dec_blk_nums: tuple[int, ...] = (1, 1, 1, 1),
        global_skip: bool = False,
        prediction: str = "noise",
        stem: int = 1,
        t_max: int | None = None,
    ):
        super().__init__()
        if prediction not in ("noise", "x0"):
            raise ValueError(f"prediction must be 'noise' or 'x0', got {prediction!r}")
        temb = 4 * width
        self.global_skip = global_skip
        self.prediction = prediction
        self.stem = int(stem)
        self.t_max = None if t_max is None else int(t_max)
        chans = img_channel * self.stem**2
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(width), nn.Linear(width, 2 * temb), SimpleGate(),
            nn.Linear(temb, temb),
        )  # fmt: skip
        self.intro = nn.Conv2d(2 * chans, width, 3, padding=1)
        self.ending = nn.Conv2d(width, chans, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        c = width
        for n in enc_blk_nums:
            self.encoders.append(BlockSeq(TimeNAFBlock(c, temb) for _ in range(n)))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle_blks = BlockSeq(TimeNAFBlock(c, temb) for _ in range(middle_blk_num))
        for n in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(BlockSeq(TimeNAFBlock(c, temb) for _ in range(n)))
        self.multiple = self.stem * 2 ** len(enc_blk_nums)

    def time_embedding(self, t, batch: int, device) -> torch.Tensor:
        """(B or 1, 4 width) time vector of integer timesteps ``t``."""
        t = torch.as_tensor(t, device=device).reshape(-1)
        return self.time_mlp(t)

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t) -> torch.Tensor:
        H, W = x_t.shape[-2:]
        temb = self.time_embedding(t, x_t.shape[0], x_t.device)
        x = torch.cat([x_t - mu, mu], dim=1)
        m = self.multiple
        x = F.pad(x, (0, (m - W % m) % m, 0, (m - H % m) % m))
        if self.stem > 1:
            x = F.pixel_unshuffle(x, self.stem)
        x = intro = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x, temb)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x, temb)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = dec(up(x) + skip, temb)
        x = self.ending(x + intro if self.global_skip else x)
        if self.stem > 1:
            x = F.pixel_shuffle(x, self.stem)
        return x[..., :H, :W]


# -- the latent auto-encoder -----------------------------------------------------------------
class ConvAct(nn.Module):
    """3x3 bias-free conv then SiLU (key ``proj``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.proj(x))


class ResBlock(nn.Module):
    """Two ``ConvAct`` plus a shortcut (bias-free 1x1 conv when the channel count changes)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.block1 = ConvAct(c_in, c_out)
        self.block2 = ConvAct(c_out, c_out)
        self.res_conv = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)) + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear attention (Shen et al. 2021), 4 heads x 32 dims: q softmax over features, k
    softmax over positions; out = 1x1 conv + gain-only channel norm."""

    heads, dim_head = 4, 32

    def __init__(self, c: int):
        super().__init__()
        hidden = self.heads * self.dim_head
        self.to_qkv = nn.Conv2d(c, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, c, 1), ChannelNorm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        qkv = self.to_qkv(x).reshape(b, 3, self.heads, self.dim_head, h * w)
        q, k, v = qkv.unbind(1)
        q = q.softmax(dim=-2) * self.dim_head**-0.5
        k = k.softmax(dim=-1)
        v = v / (h * w)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class PreNorm(nn.Module):
    def __init__(self, c: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = ChannelNorm(c), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


def _attention(c: int, on: bool) -> nn.Module:
    return Residual(PreNorm(c, LinearAttention(c))) if on else nn.Identity()


class LatentUNet(nn.Module):
    """Refusion's auto-encoder (official ``UNet``): ``encode`` -> (latent, hidden), ``decode``.

    Level l of len(ch_mult) has c_in = ch*m[l], c_out = ch*m[l+1] with m = [1, *ch_mult]: two
    residual blocks (their outputs are kept as skips), linear attention at the deepest level
    (``attn``), then a 4x4 stride-2 down-sampling conv (a 3x3 conv at the deepest level). The
    latent is at 1/2^(len(ch_mult)-1) of the image reflect-padded to a multiple of
    2^len(ch_mult). Paper: ch 8, ch_mult [4, 8, 8, 16], embed_dim 8, 2,007,859 parameters.
    ``attn=False`` (lumen's lite) leaves a purely local net, so it can run in strips or tiles.
    ``latent_scale`` (lumen's lite; 1 in the paper) multiplies the latent the encoder returns
    (and divides it back before decoding): it sets the latents' size relative to the SDE's
    fixed noise level lambda without changing the auto-encoder's weights.
    """

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        ch: int = 8,
        ch_mult: tuple[int, ...] = (4, 8, 8, 16),
        embed_dim: int = 8,
        attn: bool = True,
        latent_scale: float = 1.0,
    ):
        super().__init__()
        self.latent_scale = float(latent_scale)
        m = [1, *ch_mult]
        n = len(ch_mult)
        self.multiple = 2**n
        self.init_conv = nn.Conv2d(in_ch, ch, 3, padding=1, bias=False)
        self.encoder, self.decoder = nn.ModuleList(), nn.ModuleList()
        for lv in range(n):
            c_in, c_out = ch * m[lv], ch * m[lv + 1]
            last = lv == n - 1
            down = (
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
                if last
                else nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
            )
            self.encoder.append(
                nn.ModuleList(
                    [ResBlock(c_in, c_in), ResBlock(c_in, c_in), _attention(c_in, attn and last),
                     down]
                )
            )  # fmt: skip
        for k in range(n):
            lv = n - 1 - k
            c_in, c_out = ch * m[lv], ch * m[lv + 1]
            up = (
                nn.Conv2d(c_out, c_in, 3, padding=1, bias=False)
                if lv == 0
                else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                   nn.Conv2d(c_out, c_in, 3, padding=1))
            )  # fmt: skip
            self.decoder.append(
                nn.ModuleList(
                    [ResBlock(c_out + c_in, c_out), ResBlock(c_out + c_in, c_out),
                     _attention(c_out, attn and k == 0), up]
                )
            )  # fmt: skip
        self.latent_conv = nn.Conv2d(ch * m[-1], embed_dim, 1, bias=False)
        self.post_latent_conv = nn.Conv2d(embed_dim, ch * m[-1], 1, bias=False)
        self.final_conv = nn.Conv2d(ch, out_ch, 3, padding=1)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad right/bottom to a multiple of 2^len(ch_mult)."""
        H, W = x.shape[-2:]
        m = self.multiple
        ph, pw = (m - H % m) % m, (m - W % m) % m
        if ph or pw:
            mode = "reflect" if ph < H and pw < W else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B,in_ch,H,W) -> (latent (B,embed_dim,H'/8,W'/8), hidden: 1 + 2 len(ch_mult) maps)."""
        x = self.init_conv(self.pad(x))
        hidden = [x]
        for res1, res2, attn, down in self.encoder:
            x = res1(x)
            hidden.append(x)
            x = attn(res2(x))
            hidden.append(x)
            x = down(x)
        z = self.latent_conv(x)
        return (z if self.latent_scale == 1.0 else z * self.latent_scale), hidden

    def decode(
        self,
        z: torch.Tensor,
        hidden: list[torch.Tensor],
        hw: tuple[int, int] | None = None,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Latent + skips (from ``encode``, usually of the degraded image) -> (B,out_ch,H,W),
        cropped to ``hw`` (the unpadded size; None: the padded size). ``base`` (the image the
        skips came from) is unused: ``PoolLatent``'s interface."""
        x = self.post_latent_conv(z if self.latent_scale == 1.0 else z / self.latent_scale)
        for k, (res1, res2, attn, up) in enumerate(self.decoder):
            x = res1(torch.cat([x, hidden[-(2 * k + 1)]], dim=1))
            x = res2(torch.cat([x, hidden[-(2 * k + 2)]], dim=1))
            x = up(attn(x))
        x = self.final_conv(x + hidden[0])
        return x if hw is None else x[..., : hw[0], : hw[1]]

    def forward(
        self, x: torch.Tensor, replace_with: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """decode(encode(x)) (B,in_ch,H,W) -> (B,out_ch,H,W); with ``replace_with`` (an image
        of x's shape) also decode(latent of replace_with, skips of x): the pair used by the
        latent-replacing training loss, in one batched call."""
        hw = x.shape[-2:]
        if replace_with is None:
            z, hidden = self.encode(x)
            return self.decode(z, hidden, hw)
        b = x.shape[0]
        z, hidden = self.encode(torch.cat([x, replace_with], 0))
        skips = [torch.cat([h[:b], h[:b]], 0) for h in hidden]
        out = self.decode(z, skips, hw)
        return out[:b], out[b:]


class PoolLatent(nn.Module):
    """Fixed auto-encoder of lumen's ``lite`` preset (no parameters), ``LatentUNet``'s interface.

    ``encode(x)`` -> (latent_scale * avgpool_f(x), [x padded]): the image's f x f block means
    (f = ``factor``) at 1/f size; ``decode(z, hidden, hw, base)`` -> base + bilinear_f(z /
    latent_scale - avgpool_f(base)): the latent's change against the base image's own latent,
    upsampled, added to the base. So decode(encode(b), ., base=b) = b exactly, and the SDE on
    the latent changes only the picture's low frequencies (local exposure and colour). Images
    are reflect-padded to a multiple of 2f (the pipeline's tiling grid), as ``LatentUNet``.
    """

    def __init__(self, factor: int = 8, latent_scale: float = 10.0):
        super().__init__()
        self.factor, self.latent_scale = int(factor), float(latent_scale)
        self.multiple = 2 * self.factor

    pad = LatentUNet.pad

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        xp = self.pad(x.float())
        return F.avg_pool2d(xp, self.factor) * self.latent_scale, [xp]

    def decode(
        self,
        z: torch.Tensor,
        hidden: list[torch.Tensor],
        hw: tuple[int, int] | None = None,
        base: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if base is None:
            raise ValueError("PoolLatent decodes with base= (the image the skips came from)")
        b = self.pad(base.float())
        d = z.float() / self.latent_scale - F.avg_pool2d(b, self.factor)
        x = b + F.interpolate(d, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return x if hw is None else x[..., : hw[0], : hw[1]]
