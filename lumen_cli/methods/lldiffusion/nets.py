"""LLDiffusion's networks (Wang et al., Pattern Recognition 2025, Sec. 3): the degradation
encoder, the degradation-aware diffusion U-Net and the training-only generator.

Parameter names follow the official checkpoint after stripping ``module.``: net ``encoder``
holds ``encoder.*`` (the strided conv encoder) and ``upsample.*`` (PriorUpsample), nets
``denoiser`` / ``generator`` hold the official ``diff_unet.*`` / ``deg_unet.*``. What the
official code builds differs from its YAML files; the ``paper`` presets follow the code:

- the encoder width is 16 and it has no attention blocks (the YAML's nested ``params.encoder``
  values are never read);
- U-Net skips are concatenated (``skip_mode: add`` sits where the code does not look);
- the degradation feature widths are reversed([128,128,256,256,512,512])[:K] (K = 3 injections
  for LOL, 6 for LOL-v2), the first PriorUpsample block takes 32 x encoder width (= 512);
- spectral-normalised convolutions keep the stored ``weight_u`` / ``weight_v`` and divide by
  sigma = u^T W v (``torch.nn.utils.spectral_norm``: no power iteration in eval mode);
- channel-attention modules exist for every up level (and one unused ``fuse.cattns.1`` of
  width 2 D[K-1]) although only the injected levels call theirs.

Tensors: images in [-1,1], (B,3,H,W) with H, W multiples of 32 (``stem`` x 2^(L-1) in general).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from lumen_cli.methods.lldiffusion.unet import DiffusionUNet

PAPER_FEATS = [512, 512, 256, 256, 128, 128]  # reversed(model.channels default)


def colour_map(cond: torch.Tensor) -> torch.Tensor:
    """Colour map of the low image (B,3,H,W) in [-1,1]: x / sum_c x of its [0,1] values,
    clipped to [0,1], returned in [-1,1]."""
    c01 = (cond + 1) / 2
    return (c01 / (c01.sum(1, keepdim=True) + 1e-4)).clamp(0, 1) * 2 - 1


def _sn_conv(cin: int, cout: int, stride: int = 1, pad: int = 0, bias: bool = False):
    return spectral_norm(nn.Conv2d(cin, cout, 3, stride, pad, bias=bias))


def _down(cin: int, cout: int, stride: int = 2, pad: int = 1) -> nn.Sequential:
    """Spectral-norm 3x3 conv (no bias) + affine-free InstanceNorm: ``layerN.0`` / ``.1``."""
    return nn.Sequential(_sn_conv(cin, cout, stride, pad), nn.InstanceNorm2d(cout))


class _ResBlock(nn.Module):
    """out = lrelu(x + conv(pad(lrelu(conv(pad(x))))))  (keys ``conv_block.1`` / ``.4``)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.LeakyReLU(0.2),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.conv_block(x), 0.2)


class ConvEncoder(nn.Module):
    """Five stride-2 spectral-norm conv layers (width E, 2E, 4E, 8E, 16E), a 7x7 conv after
    the first, three residual blocks and three conv layers to 32E: (B,3,H,W) -> mu
    (B,32E,H/32,W/32). ``forward(x, features=True)`` also returns the four intermediates the
    official code offers for a perceptual loss (after layer2, layer4, res_0, res_2)."""

    def __init__(self, ch: int = 16):
        super().__init__()
        e = ch
        self.layer1 = _down(3, e)
        self.conv_7x7 = nn.Conv2d(e, e, 7)
        self.layer2, self.layer3 = _down(e, 2 * e), _down(2 * e, 4 * e)
        self.layer4, self.layer5 = _down(4 * e, 8 * e), _down(8 * e, 16 * e)
        for i in range(3):
            self.add_module(f"res_{i}", _ResBlock(16 * e))
        outs = []
        for cin in (16 * e, 32 * e, 32 * e):
            outs += [nn.ReflectionPad2d(1), _down(cin, 32 * e, 1, 0), nn.LeakyReLU(0.2)]
        self.out = nn.Sequential(*outs)

    def forward(self, x: torch.Tensor, features: bool = False):
        act = nn.functional.leaky_relu
        h = self.conv_7x7(F.pad(act(self.layer1(x), 0.2), (3, 3, 3, 3), mode="reflect"))
        f0 = self.layer2(act(h, 0.2))
        f1 = self.layer4(act(self.layer3(act(f0, 0.2)), 0.2))
        f2 = self.res_0(self.layer5(act(f1, 0.2)))
        f3 = self.res_2(self.res_1(f2))
        mu = self.out(f3)
        return (mu, [f0, f1, f2, f3]) if features else mu


class _Wrapped(nn.Module):
    """Holds ``module`` (the official checkpoint names the transposed conv ``0.module``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class PriorUpsample(nn.Module):
    """Feature pyramid from mu: block i = [x2 transposed conv if scale 2] + reflect pad +
    spectral-norm 3x3 conv (bias) to D[i] + LeakyReLU 0.2; every block's output is kept."""

    def __init__(self, cin: int, feats: list[int], scales: list[int]):
        super().__init__()
        self.convs = nn.ModuleList()
        for d, s in zip(feats, scales, strict=True):
            up = nn.ConvTranspose2d(cin, cin, 3, 2, 1, output_padding=1) if s == 2 else None
            self.convs.append(
                nn.Sequential(
                    _Wrapped(up) if up is not None else nn.Identity(),
                    nn.ReflectionPad2d(1),
                    _sn_conv(cin, d, bias=True),
                    nn.LeakyReLU(0.2),
                )
            )
            cin = d

    def forward(self, mu: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], mu
        for block in self.convs:
            h = block(h)
            out.append(h)
        return out


class DegEncoder(nn.Module):
    """Degradation encoder: low image (B,3,H,W) in [-1,1] -> K feature maps, widths
    ``feat_channels`` at H/16, H/8, ... (scales ([2]*(levels-1) + [1])[:K])."""

    def __init__(self, ch: int = 16, feat_channels: list[int] | None = None, levels: int = 6):
        super().__init__()
        feats = list(feat_channels or PAPER_FEATS[:3])
        scales = ([2] * (levels - 1) + [1])[: len(feats)]
        self.feat_channels = feats
        self.encoder = ConvEncoder(ch)
        self.upsample = PriorUpsample(32 * ch, feats, scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.upsample(self.encoder(x))


__all__ = ["ConvEncoder", "DegEncoder", "DiffusionUNet", "PriorUpsample", "colour_map"]


def eps_model(encoder: DegEncoder, denoiser: DiffusionUNet):
    """The official denoiser call (x_t, cond, t) -> eps: features = encoder(cond), U-Net input
    cat(x_t, cond, colour_map(cond)) (9 channels), all in [-1,1]; t (B,) or (1,) float steps."""

    def fn(x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([x_t, cond, colour_map(cond)], 1)
        return denoiser(inp, t, encoder(cond))

    return fn
