"""KinD's networks (Zhang, Zhang, Guo, "Kindling the Darkness", ACM MM 2019), in PyTorch.

Structure follows the paper and the official TensorFlow code (zhangyhuaee/KinD, ``model.py``):
3x3 convolutions with LeakyReLU(0.2), 2x2 max-pooling down, 2x2 stride-2 transposed
convolutions (no bias) up, skip connections by concatenation. Widths are constructor
arguments so one class serves the ``paper`` and ``lite`` presets.

- ``DecomNet``: image -> (R (B,3,H,W) sigmoid, L (B,1,H,W) sigmoid). A 3-level U-Net makes R;
  the illumination branch convolves the first-level features and joins the R branch's last
  features before a 1x1 conv. width 32 gives the published 235,876 parameters. Any H, W.
  ``port=True`` reproduces the layers of the PyTorch port fenghansen/KinD-pytorch instead (3x3
  heads, biased transposed convs + LeakyReLU, slope 0.01, skip-first concats, floor pooling
  with centred zero padding), so its own weights run as it runs them. ``residual=True``
  (lumen addition) makes the R branch a zero-initialised correction of logit(I / max(L,
  max-RGB(I))), so R keeps the image's detail from the first step.
- ``RestoreNet``: concat(R_low, L_low) (B,4,H,W) -> restored R (B,3,H,W) sigmoid. A U-Net with
  ``len(widths)`` levels; widths (32,64,128,256,512), 2 convs per level give the published
  7,760,739 parameters. Any H, W. ``residual=True`` (lumen addition) predicts a correction
  of logit(R_low) with a zero-initialised last conv, so training starts from R̂ = R_low
  instead of a constant.
- ``AdjustNet``: concat(L, ratio map) (B,2,H,W) -> adjusted L (B,1,H,W) sigmoid; three
  ``width``-channel convs (19,393 parameters at width 32). Any H, W. ``out_act=True`` (the
  official code) puts a LeakyReLU before the final sigmoid; ``slope`` 0.01 for the port.
  ``residual=True`` (lumen addition) predicts a correction of a base curve: ``base="clip"``
  logit(clip(α·L)), a plain gain; ``base="odds"`` logit(L) + log α, the gain applied to the
  odds L/(1−L), which is ≈ α·L in the shadows and rolls off smoothly below 1 (no dead gradient
  in clipped highlights). Both keep the light-level control monotone and hue-neutral outside
  the ratios seen in training.
- ``RatioNet`` (a lumen addition, not in KinD): the whole image, downsampled -> log of the
  light ratio α that brings it to a natural brightness, so the default exposure is chosen
  from the input alone (the official LOL evaluation takes α from the reference instead).

Odd sizes follow TensorFlow's "SAME" rules, as the official code runs them: 2x2/2 max-pooling
rounds up (``pool_same``), and each transposed conv makes twice its input and keeps the first
rows and columns of the skip tensor's size (``_Up``). At even sizes both are plain PyTorch ops.

All inputs are float in [0,1]; images are sRGB (gamma-encoded), as KinD was trained.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


def _act(x: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    return F.leaky_relu(x, slope)


def pool_same(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """k x k stride-k max-pooling with TF's "SAME" padding: ceil(H/k) x ceil(W/k), the partial
    windows at the bottom/right taking the max of the pixels they hold."""
    return F.max_pool2d(x, k, k, ceil_mode=True)


def _logit(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """logit in float32 (in bf16, 1 − 1e-3 rounds to 1 and the logit is infinite)."""
    x = x.float().clamp(eps, 1 - eps)
    return torch.log(x) - torch.log1p(-x)


class _Up(nn.Module):
    """2x2 stride-2 transposed conv (no bias) to ``cout`` channels, cut to the skip's size (the
    first rows/columns), then concat [up, skip]. ``port``: with bias and LeakyReLU(0.01),
    zero-padded (centred) to the skip's size, concat [skip, up]."""

    def __init__(self, cin: int, cout: int, port: bool = False):
        super().__init__()
        self.port = port
        self.deconv = nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=port)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        h, w = skip.shape[-2:]
        up = self.deconv(x)
        if not self.port:
            return torch.cat([up[..., :h, :w], skip], 1)
        up = _act(up, 0.01)
        dy, dx = h - up.shape[-2], w - up.shape[-1]
        up = F.pad(up, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))
        return torch.cat([skip, up], 1)


class DecomNet(nn.Module):
    """Layer decomposition: (B,3,H,W) image in [0,1] -> R (B,3,H,W), L (B,1,H,W) in (0,1)."""

    def __init__(self, width: int = 32, residual: bool = False, port: bool = False):
        super().__init__()
        self.residual = residual
        self.port = port
        w = width
        head = 3 if port else 1  # 1x1 in the official code (the paper drew 3x3)
        self.conv1 = _conv(3, w)
        self.conv2 = _conv(w, 2 * w)
        self.conv3 = _conv(2 * w, 4 * w)
        self.up1 = _Up(4 * w, 2 * w, port)
        self.conv4 = _conv(4 * w, 2 * w)
        self.up2 = _Up(2 * w, w, port)
        self.conv5 = _conv(2 * w, w)
        self.r_out = _conv(w, 3, head)
        self.l_conv = _conv(w, w)
        self.l_out = _conv(2 * w, 1, head)
        if residual:  # start from R = I / max(L, max-RGB): an exact reconstruction
            nn.init.zeros_(self.r_out.weight)
            nn.init.zeros_(self.r_out.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = 0.01 if self.port else 0.2
        pool = partial(F.max_pool2d, kernel_size=2) if self.port else pool_same
        c1 = _act(self.conv1(x), s)
        c2 = _act(self.conv2(pool(c1)), s)
        c3 = _act(self.conv3(pool(c2)), s)
        c4 = _act(self.conv4(self.up1(c3, c2)), s)
        c5 = _act(self.conv5(self.up2(c4, c1)), s)
        lf = _act(self.l_conv(c1), s)
        l = torch.sigmoid(self.l_out(torch.cat([c5, lf] if self.port else [lf, c5], 1)))
        y = self.r_out(c5)
        if self.residual:
            xf = x.float()
            base = xf / torch.maximum(l.float(), xf.amax(1, keepdim=True)).clamp_min(1e-3)
            y = y + _logit(base)
        return torch.sigmoid(y), l


class RestoreNet(nn.Module):
    """Reflectance restoration U-Net: R_low (B,3,H,W), L_low (B,1,H,W) -> R (B,3,H,W) in (0,1)."""

    def __init__(
        self,
        widths: list[int] | tuple[int, ...] = (32, 64, 128, 256, 512),
        convs: int = 2,
        residual: bool = False,
    ):
        super().__init__()
        widths = list(widths)
        self.levels = len(widths)
        self.residual = residual

        def block(cin: int, cout: int) -> nn.ModuleList:
            return nn.ModuleList([_conv(cin if i == 0 else cout, cout) for i in range(convs)])

        self.down = nn.ModuleList()
        cin = 4
        for w in widths:
            self.down.append(block(cin, w))
            cin = w
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for w_hi, w_lo in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
            self.ups.append(_Up(w_hi, w_lo))
            self.up_blocks.append(block(2 * w_lo, w_lo))
        self.out = _conv(widths[0], 3)
        if residual:  # start as the identity: R̂ = R_low
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    @staticmethod
    def _run(blk: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for conv in blk:
            x = _act(conv(x))
        return x

    def forward(self, r: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        x = torch.cat([r, l], 1)
        skips = []
        for i, blk in enumerate(self.down):
            if i:
                x = pool_same(x)
            x = self._run(blk, x)
            skips.append(x)
        for up, blk, skip in zip(self.ups, self.up_blocks, skips[-2::-1], strict=True):
            x = self._run(blk, up(x, skip))
        y = self.out(x)
        if self.residual:
            y = y + _logit(r)
        return torch.sigmoid(y)


class AdjustNet(nn.Module):
    """Illumination adjustment: L (B,1,H,W) in [0,1] and the light ratio α (a (B,) tensor, a
    float, or a (B,1,H,W) map) -> adjusted L (B,1,H,W) in (0,1)."""

    def __init__(
        self,
        width: int = 32,
        convs: int = 3,
        residual: bool = False,
        base: str = "clip",
        out_act: bool = False,
        slope: float = 0.2,
    ):
        super().__init__()
        if base not in ("clip", "odds"):
            raise ValueError(f"AdjustNet base must be 'clip' or 'odds', not {base!r}")
        self.residual = residual
        self.base = base
        self.out_act = out_act
        self.slope = slope
        layers = []
        cin = 2
        for _ in range(convs):
            layers.append(_conv(cin, width))
            cin = width
        self.convs = nn.ModuleList(layers)
        self.out = _conv(width, 1)
        if residual:  # start as L̂ = clip(α·L)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, l: torch.Tensor, ratio: torch.Tensor | float) -> torch.Tensor:
        if not torch.is_tensor(ratio):
            ratio = torch.tensor(float(ratio), device=l.device)
        ratio = ratio.to(l.dtype)
        if ratio.dim() <= 1:
            ratio = ratio.reshape(-1, 1, 1, 1)
        ratio = ratio.expand_as(l)
        x = torch.cat([l, ratio], 1)
        for conv in self.convs:
            x = _act(conv(x), self.slope)
        y = self.out(x)
        if self.out_act:  # the official net: LeakyReLU before the sigmoid too
            y = _act(y, self.slope)
        if self.residual:
            if self.base == "odds":  # logit(L) + log α: a gain that rolls off before 1
                y = y + _logit(l) + torch.log(ratio.float().clamp_min(1e-3))
            else:  # logit(clip(α·L)): saturated highlights have almost no gradient
                y = y + _logit(l * ratio)
        return torch.sigmoid(y)


class RatioNet(nn.Module):
    """Input-only light-ratio estimator (lumen addition). (B,3,H,W) image in [0,1], any size
    (resized to ``size``x``size`` by area averaging) -> log α (B,), where α is the ratio
    mean(L_target)/mean(L_input) KinD's adjustment net takes.

    Strided 3x3 convs see the whole picture; global mean and max pooling summarise it; a linear
    head adds a learned correction to a prior log(target / mean luminance) so an untrained net
    already gives a sensible α.
    """

    def __init__(self, width: int = 16, size: int = 64, target: float = 0.42):
        super().__init__()
        self.size = size
        self.target = target
        w = width
        self.convs = nn.ModuleList([_conv(4, w), _conv(w, 2 * w), _conv(2 * w, 2 * w)])
        self.head = nn.Linear(4 * w + 2, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x.float(), self.size).clamp(0, 1)
        lum = x.amax(1, keepdim=True)  # KinD's L behaves like a smoothed max-RGB
        log_mean = torch.log(lum.flatten(1).mean(1).clamp_min(1e-3))
        h = torch.cat([x, lum], 1)
        for conv in self.convs:
            h = _act(conv(h))
            h = F.avg_pool2d(h, 2)
        feats = torch.cat(
            [h.mean((2, 3)), h.amax((2, 3)), log_mean[:, None], log_mean[:, None] ** 2], 1
        )
        prior = torch.log(torch.tensor(self.target, device=x.device)) - log_mean
        return prior + self.head(feats).squeeze(1)
