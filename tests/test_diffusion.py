"""Diffusion schedules, the DDIM sampler and the training objective, checked against
denoisers whose optimum is known in closed form."""

import math

import pytest
import torch

from lumen_cli.diffusion.ddim import ddim_sample, to_x0_eps
from lumen_cli.diffusion.objective import diffusion_loss
from lumen_cli.diffusion.schedule import alphas_cumprod, ddim_timesteps, linear_betas, sample_gamma


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and far faster on a shared, busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_schedule_shapes_and_ends():
    a = alphas_cumprod(linear_betas(1000, 1e-6, 1e-2))
    assert a.shape == (1000,)
    assert torch.all(a[1:] < a[:-1])
    # sum of betas is ~5, so alpha_bar_T ~ exp(-5.0)
    assert math.isclose(float(a[-1]), math.exp(-5.0), rel_tol=0.02)
    assert ddim_timesteps(1000, 5) == [999, 799, 599, 399, 199]
    assert ddim_timesteps(1000, 1) == [999]
    assert len(ddim_timesteps(1000, 20)) == 20
    g = sample_gamma(a, 4096, torch.Generator().manual_seed(0))
    assert float(g.min()) >= float(a[-1].sqrt()) - 1e-6 and float(g.max()) <= 1.0


def _alphas(steps):
    a = alphas_cumprod(linear_betas(1000, 1e-6, 2e-2))
    return [float(a[t]) for t in ddim_timesteps(1000, steps)]


def _gauss_x0(mu, s):
    """Optimal x0 denoiser E[x0 | x_t] for data N(mu, s^2) at gamma = sqrt(a)."""

    def f(x, gamma):
        a = (gamma**2).view(-1, 1, 1, 1)
        return mu + a.sqrt() * s * s / (a * s * s + 1 - a) * (x - a.sqrt() * mu)

    return f


def _as(prediction, x0_fn):
    """Wrap an x0 denoiser into an eps or v predictor."""

    def f(x, gamma):
        g = gamma.view(-1, 1, 1, 1)
        s1 = (1 - g * g).sqrt()
        x0 = x0_fn(x, gamma)
        eps = (x - g * x0) / s1
        return {"x0": x0, "eps": eps, "v": g * eps - s1 * x0}[prediction]

    return f


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
@pytest.mark.parametrize("steps", [1, 5, 20])
def test_ddim_point_mass_lands_exactly(prediction, steps):
    target = torch.tensor([0.3, -0.7, 0.1]).view(1, 3, 1, 1)
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    out = ddim_sample(
        _as(prediction, lambda x, g: target.expand_as(x)), x, _alphas(steps), prediction
    )
    assert torch.allclose(out, target.expand_as(out), atol=1e-4)


def test_ddim_gaussian_matches_distribution_and_reports_progress():
    mu, s = 0.2, 0.3
    x = torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(2))
    seen = []
    out = ddim_sample(
        _as("eps", _gauss_x0(mu, s)),
        x,
        _alphas(200),
        "eps",
        clip=None,
        callback=lambda i, n: seen.append((i, n)),
    )
    assert seen[0] == (1, 200) and seen[-1] == (200, 200)
    assert abs(float(out.mean()) - mu) < 0.01
    assert abs(float(out.std()) - s) < 0.02
    # deterministic: same noise, same output; the map is monotone in the noise
    again = ddim_sample(_as("eps", _gauss_x0(mu, s)), x, _alphas(200), "eps", clip=None)
    assert torch.equal(out, again)
    corr = torch.corrcoef(torch.stack([out.flatten(), x.flatten()]))[0, 1]
    assert float(corr) > 0.999


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_parametrisations_roundtrip(prediction):
    x0 = torch.rand(2, 3, 5, 5) * 2 - 1
    eps = torch.randn(2, 3, 5, 5)
    a = 0.37
    xt = a**0.5 * x0 + (1 - a) ** 0.5 * eps
    out = {"x0": x0, "eps": eps, "v": a**0.5 * eps - (1 - a) ** 0.5 * x0}[prediction]
    x0_hat, eps_hat = to_x0_eps(out, xt, a, prediction)
    assert torch.allclose(x0_hat, x0, atol=1e-5) and torch.allclose(eps_hat, eps, atol=1e-5)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_objective_is_zero_for_the_exact_point_mass_denoiser(prediction):
    a = alphas_cumprod(linear_betas(1000, 1e-6, 1e-2))
    target = torch.full((4, 1, 3, 3), 0.25)
    loss, x0_hat = diffusion_loss(
        _as(prediction, lambda x, g: target),
        target,
        a,
        prediction,
        loss="l2",
        generator=torch.Generator().manual_seed(0),
    )
    assert float(loss) < 1e-8
    assert torch.allclose(x0_hat, target, atol=1e-3)


def test_objective_trains_a_tiny_denoiser():
    torch.manual_seed(0)
    a = alphas_cumprod(linear_betas(1000, 1e-6, 1e-2))
    w = torch.zeros(2, requires_grad=True)  # x0_hat = w0 + w1 * x_t
    opt = torch.optim.Adam([w], lr=0.05)
    data = torch.full((64, 1, 2, 2), 0.5)
    first = None
    for _ in range(200):
        loss, _ = diffusion_loss(lambda x, g: w[0] + w[1] * x, data, a, "x0", loss="l2")
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
    assert abs(float(w[0].detach()) - 0.5) < 0.1


def test_denoiser_trains_and_samples_with_one_schedule():
    from lumen_cli.diffusion.denoiser import Denoiser

    class Net(torch.nn.Module):  # predicts x0 = 0.5 * feats whatever x_t
        prediction = "x0"
        schedule = (1000, 1e-6, 1e-2)

        def forward(self, xt, gamma, feats):
            return 0.5 * feats + 0 * xt

    feats = torch.rand(2, 1, 8, 8)
    d = Denoiser(Net())
    a = alphas_cumprod(linear_betas(1000, 1e-6, 1e-2))
    assert d.alphas(5) == [float(a[t]) for t in ddim_timesteps(1000, 5)]
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    want = ddim_sample(lambda x, g: 0.5 * feats + 0 * x, noise, d.alphas(5), "x0")
    assert torch.equal(d.sample(noise, feats, 5), want)
    loss, x0 = d.loss(0.5 * feats, feats, generator=torch.Generator().manual_seed(1))
    assert float(loss) == 0.0 and torch.equal(x0, 0.5 * feats)
    shifted = Denoiser(Net(), x0_fn=lambda x0: x0 + 1)  # applied to every x0 estimate
    assert torch.allclose(shifted.loss(0.5 * feats + 1, feats)[0], torch.zeros(()))
    Net.prediction = "eps"
    with pytest.raises(ValueError):
        Denoiser(Net(), x0_fn=lambda x0: x0)
