"""One object per conditioned diffusion model: ``loss`` trains it, ``sample`` (or a call) samples.

After k-diffusion's ``layers.Denoiser``: the wrapper owns what training and sampling must agree
on (the noise schedule, the parametrisation, the post-processing of each x0 estimate), so the
pipeline and the training loss cannot drift apart. The math stays in small pure functions:
``diffusion.objective.diffusion_loss`` and ``diffusion.ddim.ddim_sample``.

The wrapped net follows the SR3 convention of ``CondUNet``:
``net(x_t, gamma, feats) -> prediction`` with gamma = sqrt(alpha_bar) (B,) and ``feats`` the
output of ``net.encode(cond)``; the net carries ``net.schedule = (n_train, beta_start,
beta_end)`` (linear betas) and ``net.prediction`` ("x0", "eps" or "v"). Data are in [-1,1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lumen_cli.diffusion.ddim import ddim_sample
from lumen_cli.diffusion.objective import diffusion_loss
from lumen_cli.diffusion.schedule import alphas_cumprod, ddim_timesteps, linear_betas

X0Fn = Callable[[torch.Tensor], torch.Tensor]  # x0 estimate (B,C,H,W) in [-1,1] -> the same


class Denoiser:
    """``net`` with its schedule. ``x0_fn`` (optional, x0-predicting nets only) maps every x0
    estimate, in training and at each sampling step alike (e.g. Diff-Retinex lite's anchoring
    of low frequencies)."""

    def __init__(self, net: Any, x0_fn: X0Fn | None = None):
        if x0_fn is not None and net.prediction != "x0":
            raise ValueError("Denoiser: x0_fn needs a net that predicts x0")
        self.net = net
        self.x0_fn = x0_fn
        n, b0, b1 = net.schedule
        self.a_bar = alphas_cumprod(linear_betas(n, b0, b1))  # (n,) float64, decreasing

    @property
    def prediction(self) -> str:
        return self.net.prediction

    def alphas(self, steps: int) -> list[float]:
        """alpha_bar at the ``steps`` DDIM steps of the training schedule (noisiest first)."""
        return [float(self.a_bar[t]) for t in ddim_timesteps(len(self.a_bar), steps)]

    def model_fn(self, feats) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``(x_t, gamma) -> prediction`` for the condition features ``feats``."""

        def fn(x_t: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
            out = self.net(x_t, gamma, feats)
            return out if self.x0_fn is None else self.x0_fn(out)

        return fn

    def loss(self, x0: torch.Tensor, feats, loss: str = "l1", generator=None):
        """One Monte-Carlo sample of the denoising loss for clean x0 (B,C,H,W) in [-1,1]:
        (scalar loss, x0 estimate (B,C,H,W) float32). Global torch RNG unless ``generator``."""
        return diffusion_loss(
            self.model_fn(feats), x0, self.a_bar, self.prediction, loss, generator
        )

    def sample(
        self,
        noise: torch.Tensor,
        feats,
        steps: int,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Deterministic DDIM (eta 0) from ``noise`` (B,C,H,W) ~ N(0, I) in ``steps`` steps ->
        x0 (B,C,H,W) float32 in [-1,1]. ``callback(i, n)`` after each step."""
        return ddim_sample(
            self.model_fn(feats), noise, self.alphas(steps), self.prediction, callback=callback
        )

    __call__ = sample


__all__ = ["Denoiser"]
