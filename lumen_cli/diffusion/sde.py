"""The mean-reverting IR-SDE (Luo et al., "Image Restoration with Mean-Reverting Stochastic
Differential Equations", ICML 2023) as small pure functions.

Forward SDE (eq. 2): dx = θ_t (μ − x) dt + σ_t dw, with σ_t² = 2 λ² θ_t, μ the degraded image
(or latent) and x_0 the clean one. With θ̄_t = ∫θ (``thetas_cumsum[t] * dt``) its marginal is
closed form (eq. 3-4)::

    x_t | x_0 ~ N(μ + (x_0 − μ) e^{−θ̄_t},  λ² (1 − e^{−2 θ̄_t}))        σ̄_t² = λ²(1 − e^{−2θ̄_t})

The network predicts the noise ε of x_t = mean + σ̄_t ε; the score is −ε / σ̄_t. Sampling runs
the reverse-time SDE (Euler–Maruyama), the probability-flow ODE, or the posterior step
x_s ~ q(x_s | x_t, x̂_0) (``posterior_step``), from x_T = μ + λ z. All three accept skipping from
t to any s < t, so a run can use fewer steps than T; with s = t − 1 they are the official
single steps. The optimal reverse step x*_{t−1} (eq. 11, the posterior mean given the true x_0)
is the target of the maximum-likelihood training loss (eq. 12).

Arrays follow the official conventions: length T + 1, index = integer timestep (0 is the clean
end and never a sampler step), float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

SAMPLERS = ("sde", "ode", "posterior")


@dataclass(frozen=True)
class IRSDESchedule:
    """θ_t, σ_t, θ̄_t (in units of dt), dt and σ̄_t for t = 0..T (each (T+1,) float32)."""

    max_sigma: float  # λ
    thetas: torch.Tensor
    sigmas: torch.Tensor
    thetas_cumsum: torch.Tensor
    dt: float
    sigma_bars: torch.Tensor

    @property
    def T(self) -> int:
        return self.thetas.shape[0] - 1


def cosine_thetas(T: int = 100, s: float = 0.008) -> torch.Tensor:
    """(T+1,) θ_t = 1 − ᾱ of a cosine schedule (Nichol & Dhariwal) on T + 2 intervals, the
    first and last point dropped (the official ``cosine_theta_schedule``)."""
    n = T + 2
    x = torch.linspace(0, n, n + 1, dtype=torch.float32)
    a = torch.cos(((x / n) + s) / (1 + s) * math.pi * 0.5) ** 2
    a = a / a[0]
    return 1 - a[1:-1]


def irsde_schedule(max_sigma: float = 50.0, T: int = 100, eps: float = 0.005) -> IRSDESchedule:
    """The IR-SDE's arrays. ``max_sigma`` >= 1 is in 8-bit units (divided by 255). dt is chosen
    so that e^{−θ̄_T} = eps: x_T has forgotten x_0 up to eps."""
    lam = max_sigma / 255 if max_sigma >= 1 else max_sigma
    thetas = cosine_thetas(T)
    sigmas = torch.sqrt(lam**2 * 2 * thetas)
    cumsum = torch.cumsum(thetas, dim=0) - thetas[0]
    dt = -1 / cumsum[-1] * math.log(eps)
    sigma_bars = torch.sqrt(lam**2 * (1 - torch.exp(-2 * cumsum * dt)))
    return IRSDESchedule(float(lam), thetas, sigmas, cumsum, float(dt), sigma_bars)


def _at(arr: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """arr[t] as a float scalar tensor, or per sample (B,1,1,1) when t is a (B,) tensor."""
    if isinstance(t, torch.Tensor) and t.dim() > 0:
        return arr.to(like.device)[t.to(arr.device).long()].view(-1, *[1] * (like.dim() - 1))
    return arr[int(t)].to(like.device)


def marginal_mean(x0: torch.Tensor, mu: torch.Tensor, sched: IRSDESchedule, t) -> torch.Tensor:
    """E[x_t | x_0] = μ + (x_0 − μ) e^{−θ̄_t}."""
    return mu + (x0 - mu) * torch.exp(-_at(sched.thetas_cumsum, t, x0) * sched.dt)


def marginal_std(sched: IRSDESchedule, t, like: torch.Tensor) -> torch.Tensor:
    """Std[x_t | x_0] = σ̄_t."""
    return _at(sched.sigma_bars, t, like)


def q_sample(x0, mu, sched: IRSDESchedule, t, noise: torch.Tensor) -> torch.Tensor:
    """x_t = E[x_t | x_0] + σ̄_t ε: a state of the forward process (training)."""
    return marginal_mean(x0, mu, sched, t) + marginal_std(sched, t, x0) * noise


def score_from_noise(noise: torch.Tensor, sched: IRSDESchedule, t) -> torch.Tensor:
    """∇ log p_t(x) = −ε / σ̄_t."""
    return -noise / marginal_std(sched, t, noise)


def _theta_sum(sched: IRSDESchedule, t, s, like) -> torch.Tensor:
    """Σ_{k=s+1..t} θ_k, the interval's θ in units of dt (s None: t − 1, i.e. θ_t)."""
    if s is None:
        return _at(sched.thetas, t, like)
    if isinstance(t, torch.Tensor) and t.dim() > 0:
        return _at(sched.thetas_cumsum, t, like) - _at(sched.thetas_cumsum, s, like)
    return sched.thetas[int(s) + 1 : int(t) + 1].sum().to(like.device)


def _sigma2(sched: IRSDESchedule, t, s, like) -> torch.Tensor:
    """σ² of the interval: σ_t² for a single step (s None), else 2 λ² Σθ."""
    if s is None:
        return _at(sched.sigmas, t, like) ** 2
    return 2 * sched.max_sigma**2 * _theta_sum(sched, t, s, like)


def _abc(sched: IRSDESchedule, t, s, like, k: float = 1.0):
    """(A, B, C) = (e^{−k(θ̄_t − θ̄_s)}, e^{−k θ̄_t}, e^{−k θ̄_s}) of the step t -> s."""
    dt = sched.dt
    ct = _at(sched.thetas_cumsum, t, like)
    cs = _at(sched.thetas_cumsum, t - 1 if s is None else s, like)
    A = torch.exp(-k * _theta_sum(sched, t, s, like) * dt)
    return A, torch.exp(-k * ct * dt), torch.exp(-k * cs * dt)


def posterior_mean(x_t, x0, mu, sched: IRSDESchedule, t, s=None) -> torch.Tensor:
    """E[x_s | x_t, x_0] (s None: t − 1, the optimal reverse step x*_{t−1}, eq. 11)::

    A(1−C²)/(1−B²) (x_t − μ) + C(1−A²)/(1−B²) (x_0 − μ) + μ
    """
    A, B, C = _abc(sched, t, s, x_t)
    return (
        (A * (1 - C**2) / (1 - B**2)) * (x_t - mu) + (C * (1 - A**2) / (1 - B**2)) * (x0 - mu) + mu
    )


def optimal_reverse_step(x_t, x0, mu, sched: IRSDESchedule, t) -> torch.Tensor:
    """x*_{t−1} = argmax q(x_{t−1} | x_t, x_0): the maximum-likelihood target (eq. 11)."""
    return posterior_mean(x_t, x0, mu, sched, t)


def x0_from_noise(x_t, mu, noise, sched: IRSDESchedule, t) -> torch.Tensor:
    """x̂_0 = (x_t − μ − σ̄_t ε̂) e^{θ̄_t} + μ (the marginal solved for x_0)."""
    e = torch.exp(_at(sched.thetas_cumsum, t, x_t) * sched.dt)
    return (x_t - mu - marginal_std(sched, t, x_t) * noise) * e + mu


def reverse_sde_mean(x, mu, score, sched: IRSDESchedule, t, s=None) -> torch.Tensor:
    """Drift part of an Euler–Maruyama step of the reverse SDE from t to s (None: t − 1):
    x − (θ (μ − x) − σ² ∇log p) dt, θ and σ² = 2λ²θ summed over the interval."""
    th = _theta_sum(sched, t, s, x)
    return x - (th * (mu - x) - _sigma2(sched, t, s, x) * score) * sched.dt


def reverse_sde_step(x, mu, score, sched: IRSDESchedule, t, s, z: torch.Tensor) -> torch.Tensor:
    """One reverse-SDE step t -> s (None: t − 1) with injected noise z ~ N(0, I)."""
    sig = _at(sched.sigmas, t, x) if s is None else _sigma2(sched, t, s, x).sqrt()
    return reverse_sde_mean(x, mu, score, sched, t, s) - sig * (z * math.sqrt(sched.dt))


def reverse_ode_step(x, mu, score, sched: IRSDESchedule, t, s=None) -> torch.Tensor:
    """One Euler step t -> s of the probability-flow ODE: x − (θ(μ − x) − ½σ² ∇log p) dt."""
    th = _theta_sum(sched, t, s, x)
    return x - (th * (mu - x) - 0.5 * _sigma2(sched, t, s, x) * score) * sched.dt


def posterior_std(sched: IRSDESchedule, t, s, like) -> torch.Tensor:
    """Std[x_s | x_t, x_0] = λ sqrt((1−A²)(1−C²)/(1−B²)) (variance clamped at 1e-20 dt)."""
    A2, B2, C2 = _abc(sched, t, s, like, k=2.0)
    var = ((1 - A2) * (1 - C2) / (1 - B2)).clamp_min(1e-20 * sched.dt)
    return torch.exp(0.5 * torch.log(var)) * sched.max_sigma


def posterior_step(x, mu, noise, sched: IRSDESchedule, t, s, z: torch.Tensor) -> torch.Tensor:
    """x_s ~ q(x_s | x_t, x̂_0(ε̂)): the posterior sampler's step t -> s."""
    x0 = x0_from_noise(x, mu, noise, sched, t)
    return posterior_mean(x, x0, mu, sched, t, s) + posterior_std(sched, t, s, x) * z


def timesteps(T: int, steps: int) -> list[int]:
    """``steps`` integer timesteps from T down, evenly spaced (steps >= T: every one, T..1)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    steps = min(steps, T)
    return sorted({max(1, round(T - i * T / steps)) for i in range(steps)}, reverse=True)


def start_state(
    mu: torch.Tensor, sched: IRSDESchedule, z: torch.Tensor, t: int | None = None
) -> torch.Tensor:
    """x_T = μ + λ z: the degraded image plus the SDE's stationary noise. With ``t`` < T (a
    truncated reverse process): x_t = μ + σ̄_t z, the forward marginal at t for an x_0 near μ."""
    if t is None or t >= sched.T:
        return mu + sched.max_sigma * z
    return mu + marginal_std(sched, t, mu) * z


NoiseFn = Callable[[int], torch.Tensor]  # step index i -> z (same shape as the state)


def sample(
    model_fn: Callable[[torch.Tensor, int], torch.Tensor],
    x: torch.Tensor,
    mu: torch.Tensor,
    sched: IRSDESchedule,
    steps: int | Sequence[int],
    sampler: str = "sde",
    noise_fn: NoiseFn | None = None,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Reverse the IR-SDE from the state x (at t = T) to t = 0.

    ``model_fn(x_t, t)`` returns the predicted noise ε̂ (same shape). ``steps``: a count (evenly
    spaced, ``timesteps``) or the explicit descending list of timesteps. ``noise_fn(i)`` gives
    the noise z of step i (sde, posterior); required for them. ``callback(i, n, x_t)`` sees the
    state fed to the net at step i (0-based) of n. No clipping anywhere, as the paper.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
    ts = timesteps(sched.T, steps) if isinstance(steps, int) else list(steps)
    n = len(ts)
    x = x.float()
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < n else 0
        s = None if s == t - 1 else s  # single steps use the official θ_t, σ_t exactly
        if callback is not None:
            callback(i, n, x)
        eps = model_fn(x, t).float()
        if sampler == "posterior":
            x = posterior_step(x, mu, eps, sched, t, s, noise_fn(i))
            continue
        score = score_from_noise(eps, sched, t)
        if sampler == "ode":
            x = reverse_ode_step(x, mu, score, sched, t, s)
        else:
            x = reverse_sde_step(x, mu, score, sched, t, s, noise_fn(i))
    return x
