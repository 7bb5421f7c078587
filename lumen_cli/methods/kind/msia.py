"""KinD++'s reflectance restoration net with multi-scale illumination attention (MSIA).

Zhang, Guo, Ma, Liu, Zhang, "Beyond Brightening Low-light Images", IJCV 2021 (KinD++), Sec. 3.2
and Fig. 3; layer semantics follow the official TensorFlow code (``Denoise_Net`` in
zhangyhuaee/KinD_plus ``model.py`` / ``msia_BN_3_M.py``), so its checkpoint loads one to one.

- ``MSIA(c)``: feature f (B,c,H,W) and illumination L (B,1,H,W) -> (B,c,H,W). An attention map
  sigmoid(conv3x3(L)) (no bias) weights f; three branches see the weighted features at full,
  1/2 and 1/4 resolution (conv + ReLU, BatchNorm, ReLU; the coarse ones are brought back by
  2x2 stride-2 transposed convs with bias and ReLU); a 1x1 conv + ReLU fuses the four maps.
  ReLU, not LeakyReLU, inside the block: the official code takes slim's default activation.
  BatchNorm eps is 1e-3 (TensorFlow's default). H, W must be multiples of 4.
- ``RestoreMSIANet``: R (B,3,H,W) in [0,1], L (B,1,H,W) -> restored R (B,3,H,W) in (0,1).
  Four stages of two 3x3 conv + LeakyReLU(0.2) followed by an MSIA block (widths 32/64,
  128/256, 512/256, 128/64 at full size), then conv3x3 + LeakyReLU to 32, conv3x3 to 3,
  sigmoid. Every stage works at full resolution; L enters only through the attention maps.
  ``widths`` scales the stages (the ``paper-plus`` preset: 8,023,079 stored numbers with the
  BatchNorm statistics, as the official checkpoint).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumen_cli.methods.kind.nets import _act, _conv, pool_same

PAPER_WIDTHS = ((32, 64), (128, 256), (512, 256), (128, 64))


class _Branch(nn.Module):
    """conv (k x k, bias) + ReLU, BatchNorm, ReLU; then ``ups`` 2x transposed convs + ReLU."""

    def __init__(self, c: int, k: int, ups: int):
        super().__init__()
        self.conv = _conv(c, c, k)
        self.bn = nn.BatchNorm2d(c, eps=1e-3)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(c, c, 2, stride=2) for _ in range(ups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(F.relu(self.conv(x))))
        for up in self.ups:
            x = F.relu(up(x))
        return x


class MSIA(nn.Module):
    """Multi-scale illumination attention: (f (B,c,H,W), L (B,1,H,W)) -> (B,c,H,W)."""

    def __init__(self, c: int):
        super().__init__()
        self.att = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.pu1 = _Branch(c, 3, 0)
        self.pu2 = _Branch(c, 3, 1)
        self.pu4 = _Branch(c, 1, 2)
        self.fuse = _conv(4 * c, c, 1)

    def forward(self, f: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        a = f * torch.sigmoid(self.att(l))
        b1 = self.pu1(a)
        b2 = self.pu2(pool_same(a, 2))
        b4 = self.pu4(pool_same(a, 4))
        return F.relu(self.fuse(torch.cat([a, b1, b2, b4], 1)))


class RestoreMSIANet(nn.Module):
    """KinD++ restoration: R (B,3,H,W), L (B,1,H,W), H and W multiples of 4 -> R̂ (B,3,H,W)."""

    def __init__(self, widths: list[list[int]] | tuple = PAPER_WIDTHS, tail: int = 32):
        super().__init__()
        self.stages = nn.ModuleList()
        self.msia = nn.ModuleList()
        cin = 3
        for w1, w2 in widths:
            self.stages.append(nn.ModuleList([_conv(cin, w1), _conv(w1, w2)]))
            self.msia.append(MSIA(w2))
            cin = w2
        self.tail = _conv(cin, tail)
        self.out = _conv(tail, 3)

    def forward(self, r: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        x = r
        for convs, msia in zip(self.stages, self.msia, strict=True):
            for conv in convs:
                x = _act(conv(x))
            x = msia(x, l)
        return torch.sigmoid(self.out(_act(self.tail(x))))
