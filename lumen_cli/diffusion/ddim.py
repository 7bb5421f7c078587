"""Deterministic DDIM sampling (Song et al. 2021, eta = 0) as a small pure function.

The model may predict x0, the noise eps, or v = sqrt(a) eps - sqrt(1-a) x0; ``to_x0_eps``
converts any of them into the (x0, eps) pair the DDIM update needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

PREDICTIONS = ("eps", "x0", "v")


def to_x0_eps(
    out: torch.Tensor, x_t: torch.Tensor, a: float, prediction: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model output in parametrisation ``prediction`` at alpha_bar ``a`` -> (x0_hat, eps_hat)."""
    sa, s1 = a**0.5, (1.0 - a) ** 0.5
    if prediction == "x0":
        x0 = out
        eps = (x_t - sa * x0) / max(s1, 1e-8)
    elif prediction == "eps":
        eps = out
        x0 = (x_t - s1 * eps) / sa
    elif prediction == "v":
        x0 = sa * x_t - s1 * out
        eps = s1 * x_t + sa * out
    else:
        raise ValueError(f"unknown prediction {prediction!r}; one of {PREDICTIONS}")
    return x0, eps


def ddim_sample(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    alphas: Sequence[float],
    prediction: str = "x0",
    clip: tuple[float, float] | None = (-1.0, 1.0),
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run deterministic DDIM from x (B,C,H,W) ~ N(0, I) at alpha_bar ``alphas[0]`` down to x0.

    ``alphas``: alpha_bar at each sampling step, from the noisiest (smallest) upwards, e.g.
    ``a_bar[ddim_timesteps(1000, 20)]``. ``model_fn(x_t, gamma)`` gets gamma = sqrt(alpha_bar)
    as a (B,) float32 tensor and returns the prediction. ``clip`` clamps each x0 estimate
    (data range). After the last step the x0 estimate is returned (alpha_bar_prev = 1).
    ``callback(i, n)`` is called after step i (1-based) of n.
    """
    n = len(alphas)
    b = x.shape[0]
    x = x.float()
    x0 = x
    for i, a in enumerate(alphas):
        a = float(a)
        gamma = torch.full((b,), a**0.5, dtype=torch.float32, device=x.device)
        out = model_fn(x, gamma).float()
        x0, eps = to_x0_eps(out, x, a, prediction)
        if clip is not None:
            x0 = x0.clamp(*clip)
            if prediction != "eps":  # keep eps consistent with the clamped x0
                eps = (x - a**0.5 * x0) / max((1.0 - a) ** 0.5, 1e-8)
        if i + 1 < n:
            a_prev = float(alphas[i + 1])
            x = a_prev**0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps
        else:
            x = x0
        if callback is not None:
            callback(i + 1, n)
    return x
