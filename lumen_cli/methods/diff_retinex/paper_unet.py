"""Diff-Retinex's diffusion stages (Diff-RDA, Diff-IDA) with the official state-dict layout.

Yi et al., ICCV 2023, sections 3.2-3.3; noise predictor after SR3 (Saharia et al. 2021).
``PaperDiffusion`` holds what one official ``best_gen.pth`` holds:

- ``denoise_fn`` (``SR3UNet``): eps = f([condition, x_t], gamma), gamma = sqrt(alpha_bar)
  (B,), condition and x_t in [-1,1] with C channels each (RDA 3, IDA 1). GroupNorm with
  ``norm_groups`` groups (RDA 32, IDA 1), self-attention at ``attn_levels`` and in the middle.
- ``Unet_fn``, the x0 refiner, x0 = g([condition, x0 estimate], gamma): RDA a Restormer
  (``paper_nets.Restormer`` with noise injections), IDA an ``SR3UNet`` without normalisation
  in its blocks whose output adds its x0 input.
- the twelve float32 schedule buffers of a linear beta schedule (computed in float64, as the
  authors' code does; a checkpoint carries the same values).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lumen_cli.methods.diff_retinex.paper_nets import (
    SCHEDULE_BUFFERS,
    NoiseInject,
    Restormer,
    Swish,
    noise_mlp,
)


class Block(nn.Module):
    """[GroupNorm], Swish, [Dropout], 3x3 conv (keys ``block.0`` norm, ``block.3`` or, without
    norm, ``block.2`` conv)."""

    def __init__(self, cin: int, cout: int, groups: int, dropout: float = 0.0, norm=True):
        super().__init__()
        mods = [nn.GroupNorm(groups, cin)] if norm else []
        mods += [Swish(), nn.Dropout(dropout) if dropout else nn.Identity()]
        self.block = nn.Sequential(*mods, nn.Conv2d(cin, cout, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups, dropout, norm):
        super().__init__()
        self.noise_func = NoiseInject(emb_dim, cout)
        self.block1 = Block(cin, cout, groups, norm=norm)
        self.block2 = Block(cout, cout, groups, dropout, norm=norm)
        self.res_conv = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.noise_func(self.block1(x), emb))
        return h + self.res_conv(x)


class SelfAttention(nn.Module):
    """One-head attention over all pixels: GroupNorm, 1x1 qkv (no bias), softmax(q k^T /
    sqrt(C)) v, 1x1 output, residual."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, ch * 3, 1, bias=False)
        self.out = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (
            t.reshape(b, 1, c, h * w).transpose(-1, -2) for t in self.qkv(self.norm(x)).chunk(3, 1)
        )
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(-1, -2).reshape(b, c, h, w)) + x


class ResAttn(nn.Module):
    """Keys ``res_block.*`` and, with attention, ``attn.*``."""

    def __init__(self, cin, cout, emb_dim, groups, dropout, norm, attn):
        super().__init__()
        self.res_block = ResBlock(cin, cout, emb_dim, groups, dropout, norm)
        self.attn = SelfAttention(cout, groups) if attn else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res_block(x, emb)
        return x if self.attn is None else self.attn(x)


class _Scale(nn.Module):
    """Stride-2 3x3 conv (down) or nearest x2 + 3x3 conv (up): key ``conv``."""

    def __init__(self, ch: int, up: bool):
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(ch, ch, 3, stride=1 if up else 2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest") if self.up else x)


class SR3UNet(nn.Module):
    """SR3 noise-conditioned U-Net: ``forward(x (B,in,H,W), gamma (B,)) -> (B,out,H,W)``,
    H and W multiples of 2^(len(mults)-1).

    ``residual``: add the input's last ``out_ch`` channels to the output (the IDA refiner,
    whose blocks also have no normalisation: ``norm=False``; its attention keeps GroupNorm).
    """

    def __init__(self, in_ch, out_ch, inner, mults, res_blocks=2, attn_levels=(),
                 norm_groups=32, dropout=0.0, norm=True, residual=False):  # fmt: skip
        super().__init__()
        self.residual = residual
        self.noise_level_mlp = noise_mlp(inner)
        g = norm_groups

        def rab(cin, cout, attn):
            return ResAttn(cin, cout, inner, g, dropout, norm, attn)

        downs: list[nn.Module] = [nn.Conv2d(in_ch, inner, 3, padding=1)]
        skips, ch = [inner], inner
        for i, m in enumerate(mults):
            for _ in range(res_blocks):
                downs.append(rab(ch, inner * m, i in attn_levels))
                ch = inner * m
                skips.append(ch)
            if i + 1 < len(mults):
                downs.append(_Scale(ch, up=False))
                skips.append(ch)
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([rab(ch, ch, True), rab(ch, ch, False)])
        ups: list[nn.Module] = []
        for i in reversed(range(len(mults))):
            for _ in range(res_blocks + 1):
                ups.append(rab(ch + skips.pop(), inner * mults[i], i in attn_levels))
                ch = inner * mults[i]
            if i > 0:
                ups.append(_Scale(ch, up=True))
        self.ups = nn.ModuleList(ups)
        self.final_conv = Block(ch, out_ch, g, norm=norm)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        emb = self.noise_level_mlp(gamma)
        h, feats = x, []
        for layer in self.downs:
            h = layer(h, emb) if isinstance(layer, ResAttn) else layer(h)
            feats.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.ups:
            h = (
                layer(torch.cat([h, feats.pop()], 1), emb)
                if isinstance(layer, ResAttn)
                else layer(h)
            )
        out = self.final_conv(h)
        return out + x[:, -out.shape[1] :] if self.residual else out


def schedule_buffers(start: float, end: float, n: int = 1000) -> dict[str, np.ndarray]:
    """The official GaussianDiffusion buffers of a linear beta schedule, float64 (cast to
    float32 when registered), plus ``sqrt_alphas_cumprod_prev`` (n+1,) = sqrt([1, a_bar])."""
    betas = np.linspace(start, end, n, dtype=np.float64)
    ac = np.cumprod(1.0 - betas)
    prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - prev) / (1.0 - ac)
    return {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - ac),
        "sqrt_alphas_cumprod_prev": np.sqrt(np.append(1.0, ac)),
    }


class PaperDiffusion(nn.Module):
    """One official diffusion stage: ``denoise_fn``, ``Unet_fn`` and the schedule buffers.

    channels: C of the signal (RDA 3, IDA 1); the nets take 2C channels [condition, x].
    denoiser: ``SR3UNet`` options (inner, mults, res_blocks, attn_levels, norm_groups).
    refiner: {"type": "restormer", "dim": 32} (RDA) or {"type": "unet", **SR3UNet options}
    (IDA). beta: (start, end) of the linear schedule over ``n_timestep`` steps.
    """

    def __init__(self, channels: int, denoiser: dict, refiner: dict, beta: list[float],
                 n_timestep: int = 1000):  # fmt: skip
        super().__init__()
        c = channels
        self.channels, self.beta, self.n_timestep = c, tuple(beta), n_timestep
        self.denoise_fn = SR3UNet(2 * c, c, **denoiser)
        opts = {k: v for k, v in refiner.items() if k != "type"}
        if refiner["type"] == "restormer":
            d = opts["dim"]
            self.Unet_fn = Restormer(2 * c, c, d, [1, 1, 2], 2, [1, 2, 4], 2, False, noise_dim=d)
        else:
            self.Unet_fn = SR3UNet(2 * c, c, norm=False, residual=True, **opts)
        for name, v in schedule_buffers(*beta, n_timestep).items():
            if name in SCHEDULE_BUFFERS:
                self.register_buffer(name, torch.from_numpy(v).float())

    def schedule64(self) -> dict[str, np.ndarray]:
        return schedule_buffers(*self.beta, self.n_timestep)
