"""Discrete-time DDPM/DDIM with integer timesteps, as in the ermongroup DDIM code that
LightenDiffusion (and many latent-diffusion ports) use: small pure functions.

Conventions: ``betas`` float32 (T,); ``alpha_bar(t)`` = cumprod(1 - beta)[t] for t = 0..T-1 and
alpha_bar(-1) = 1; the model gets the integer step t as a float tensor (B,) and predicts the
noise eps. ``lumen_cli.diffusion.ddim`` covers continuous noise levels instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def linear_betas_f32(n: int = 1000, start: float = 1e-4, end: float = 2e-2) -> torch.Tensor:
    """DDPM linear betas computed in float64 then cast to float32 (as the official numpy code)."""
    return torch.linspace(start, end, n, dtype=torch.float64).float()


def alpha_bar_f32(betas: torch.Tensor) -> torch.Tensor:
    """float32 cumprod(1 - beta), shape (T,)."""
    return torch.cumprod(1.0 - betas.float(), dim=0)


def ddim_skip_pairs(n_train: int, steps: int) -> list[tuple[int, int]]:
    """The (t, t_next) visiting order of DDIM with a uniform skip: skip = n_train // steps,
    seq = 0, skip, 2*skip, ... < n_train, visited from the last, each followed by the one
    before it and finally by -1. (1000, 20) -> (950, 900), ..., (50, 0), (0, -1). A ``steps``
    that does not divide ``n_train`` gives more than ``steps`` pairs, as the official code."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    skip = max(1, n_train // steps)
    seq = list(range(0, n_train, skip))
    nxt = [-1] + seq[:-1]
    return list(zip(reversed(seq), reversed(nxt), strict=True))


def _abar(a_bar: torch.Tensor, t: int) -> torch.Tensor:
    return a_bar.new_ones(()) if t < 0 else a_bar[t]


def ddim_eps_step(
    x_t: torch.Tensor, eps: torch.Tensor, at: torch.Tensor, at_next: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One eta = 0 DDIM update from an eps prediction: returns (x_next, x0_hat).
    x0_hat = (x_t - sqrt(1-at) eps) / sqrt(at), not clipped; x_next = sqrt(at_next) x0_hat +
    sqrt(1 - at_next) eps."""
    x0 = (x_t - eps * (1 - at).sqrt()) / at.sqrt()
    return at_next.sqrt() * x0 + (1 - at_next).sqrt() * eps, x0


def ddim_eps_sample(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    a_bar: torch.Tensor,
    pairs: list[tuple[int, int]],
    callback: Callable[[int, int], None] | None = None,
    trace: list | None = None,
) -> torch.Tensor:
    """Deterministic DDIM from x (B,C,h,w) ~ N(0,I) along ``pairs`` (``ddim_skip_pairs``).

    ``model_fn(x_t, t)`` gets t as a float (B,) tensor of the integer step and returns eps.
    The result is the last update (with t_next = -1 it is the x0 estimate at t = 0), not
    clipped. ``trace`` (a list) receives (t, x_t, eps) per step; ``callback(i, n)`` is called
    after step i (1-based) of n. Differentiable (used by training's consistency loss).
    """
    a_bar = a_bar.to(x.device)
    n = len(pairs)
    for i, (t, t_next) in enumerate(pairs):
        tt = torch.full((x.shape[0],), float(t), device=x.device)
        eps = model_fn(x, tt).to(x.dtype)
        if trace is not None:
            trace.append((t, x, eps))
        x, _ = ddim_eps_step(x, eps, _abar(a_bar, t), _abar(a_bar, t_next))
        if callback is not None:
            callback(i + 1, n)
    return x


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, a_bar: torch.Tensor):
    """The eps that an x0 prediction implies at step t (B,) (integer values, any dtype):
    (x_t - sqrt(a_t) x0) / sqrt(1 - a_t). With it ``ddim_eps_sample`` samples an
    x0-predicting model: its x0 estimate at each step is then exactly that prediction."""
    a = a_bar.to(x_t.device)[t.long()].view(-1, *([1] * (x_t.dim() - 1)))
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def q_sample(x0: torch.Tensor, t: torch.Tensor, a_bar: torch.Tensor, noise: torch.Tensor):
    """Forward diffusion x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise; t (B,) long."""
    a = a_bar.to(x0.device)[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
