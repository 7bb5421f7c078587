"""Noise schedules of discrete-time (DDPM) diffusion and the step subsets DDIM samples on.

Notation: x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps with a_t = alpha_bar_t = prod_{s<=t}(1 - beta_s).
The denoisers here are conditioned on the continuous noise level gamma = sqrt(a_t) (as in SR3),
so any subset of the training steps can be sampled.
"""

from __future__ import annotations

import torch


def linear_betas(n: int = 1000, start: float = 1e-6, end: float = 1e-2) -> torch.Tensor:
    """DDPM linear beta schedule (float64, shape (n,)). Diff-Retinex: RDA 1e-6 -> 1e-2,
    IDA 1e-6 -> 2e-2, n = 1000."""
    return torch.linspace(start, end, n, dtype=torch.float64)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t for t = 1..n (float64, shape (n,), decreasing)."""
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(n_train: int, steps: int) -> list[int]:
    """``steps`` evenly spaced training step indices (0-based), from the noisiest down.

    The first is always n_train - 1 (pure noise end) and the last the least noisy one, e.g.
    (1000, 5) -> [999, 799, 599, 399, 199].
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    steps = min(steps, n_train)
    stride = n_train / steps
    return [int(round(n_train - 1 - i * stride)) for i in range(steps)]


def sample_gamma(a_bar: torch.Tensor, batch: int, generator=None) -> torch.Tensor:
    """SR3's continuous noise level for training: pick t uniformly in 1..n, then gamma uniformly
    between sqrt(a_{t-1}) and sqrt(a_t) (with a_0 = 1). Returns (batch,) float32 in (0, 1]."""
    n = a_bar.shape[0]
    sqrt_prev = torch.cat([torch.ones(1, dtype=a_bar.dtype), a_bar.sqrt()])  # (n+1,)
    t = torch.randint(1, n + 1, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    lo, hi = sqrt_prev[t], sqrt_prev[t - 1]
    return (lo + u * (hi - lo)).float()
