"""The diffusion training objective: noise a clean sample, ask the model, compare.

``diffusion_loss`` is the counterpart of ``ddim_sample``: same noise-level convention
(gamma = sqrt(alpha_bar), continuous as in SR3), same parametrisations (x0, eps, v).
Randomness comes from torch's global RNG (seeded and checkpointed by the training engine)
unless a generator is given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lumen_cli.diffusion.schedule import sample_gamma


def diffusion_loss(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    a_bar: torch.Tensor,
    prediction: str = "x0",
    loss: str = "l1",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Monte-Carlo sample of the denoising loss.

    x0: (B,C,H,W) clean data in [-1,1]; a_bar: (n,) alpha_bar of the schedule;
    ``model_fn(x_t, gamma)`` as for ``ddim_sample``. Returns (scalar loss, x0 estimate (B,C,H,W)
    in float32, useful for auxiliary image-space losses).
    """
    b = x0.shape[0]
    gamma = sample_gamma(a_bar, b, generator).to(x0.device)
    g = gamma.view(b, 1, 1, 1)
    s1 = (1.0 - g * g).clamp_min(0).sqrt()
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
    x_t = g * x0 + s1 * noise
    out = model_fn(x_t, gamma).float()
    if prediction == "x0":
        target, x0_hat = x0, out
    elif prediction == "eps":
        target = noise
        x0_hat = (x_t - s1 * out) / g
    elif prediction == "v":
        target = g * noise - s1 * x0
        x0_hat = g * x_t - s1 * out
    else:
        raise ValueError(f"unknown prediction {prediction!r}")
    if loss == "l1":
        value = (out - target).abs().mean()
    elif loss == "l2":
        value = (out - target).pow(2).mean()
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return value, x0_hat
