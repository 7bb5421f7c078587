"""Refusion / IR-SDE: parity with the official code (``../shared/parity/refusion``, pixel and
latent), full-size key coverage and parameter counts, the SDE's closed forms, the samplers,
the pipeline (seeded, tiled, decompose refused) and the training losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lumen_cli.diffusion import sde as S
from lumen_cli.errors import UsageError
from lumen_cli.methods.refusion import convert as C
from lumen_cli.methods.refusion.pipeline import RefusionPipeline
from lumen_cli.methods.refusion.windows import encode_latent
from lumen_cli.pipelines.base import EnhanceOptions
from tests.parity import close

PARITY = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "refusion"
PIXEL, LATENT_NET, LATENT_AE = (
    "refusion.pth", "latent-reffusion-dehazing.pth", "latent-dehazing.pth"
)  # fmt: skip
SCHED = S.irsde_schedule(50, 100, 0.005)


def _need_fixture() -> None:
    if not PARITY.is_dir():
        pytest.skip("parity fixture ../shared/parity/refusion not present")


@pytest.fixture(scope="module")
def io():
    _need_fixture()
    from safetensors.torch import load_file

    return load_file(str(PARITY / "io.safetensors"))


@pytest.fixture(scope="module")
def pixel():
    _need_fixture()
    conv = C.convert([PARITY / PIXEL])
    assert conv.preset == "paper"
    return conv.nets["noise"]


@pytest.fixture(scope="module")
def latent():
    _need_fixture()
    conv = C.convert([PARITY / LATENT_AE, PARITY / LATENT_NET])  # any order
    assert conv.preset == "paper-latent"
    return conv.nets["noise"], conv.nets["ae"]


def test_schedule(io):
    for k in ("thetas", "sigmas", "thetas_cumsum", "sigma_bars"):
        close(getattr(SCHED, k), io[f"sde.{k}"], rel=1e-5)
    assert SCHED.dt == pytest.approx(float(io["sde.dt"]), rel=1e-6)
    assert SCHED.max_sigma == pytest.approx(float(io["sde.max_sigma"]), rel=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("t", [100, 50, 1])
def test_noise_nets(io, pixel, latent, t):
    close(pixel(io[f"pixel.t{t}.x_t"], io["pixel.lq"], t), io[f"pixel.t{t}.noise_pred"])
    close(pixel.time_embedding(t, 1, "cpu"), io[f"pixel.t{t}.time_emb"])
    net, _ = latent
    mu = io["latent.enc.latent"]
    close(net(io[f"latent.t{t}.x_t"], mu, t), io[f"latent.t{t}.noise_pred"])
    close(net.time_embedding(torch.tensor([float(t)]), 1, "cpu"), io[f"latent.t{t}.time_emb"])


@torch.no_grad()
def test_autoencoder(io, latent):
    _, ae = latent
    z, hidden = ae.encode(io["latent.img_lq"])
    close(z, io["latent.enc.latent"])
    assert len(hidden) == 9
    for i, h in enumerate(hidden):
        close(h, io[f"latent.enc.hidden.{i}"])
    z_gt, _ = ae.encode(io["latent.img_gt"])
    close(z_gt, io["latent.enc_gt.latent"])
    hw = io["latent.img_lq"].shape[-2:]
    close(ae.decode(z, hidden, hw), io["latent.dec.rec_lq"])
    close(ae.decode(z_gt, hidden, hw), io["latent.dec.gt_latent_lq_hidden"])


@pytest.mark.parametrize("t", [100, 50, 1])
def test_single_steps(io, t):
    x, mu, eps = io[f"pixel.t{t}.x_t"], io["pixel.lq"], io[f"pixel.t{t}.noise_pred"]
    p = f"sde.step.t{t}."
    score = S.score_from_noise(eps, SCHED, t)
    close(score, io[p + "score"])
    close(S.reverse_sde_step(x, mu, score, SCHED, t, None, io[p + "sde_z"]), io[p + "sde_out"])
    close(S.reverse_ode_step(x, mu, score, SCHED, t), io[p + "ode_out"])
    close(S.x0_from_noise(x, mu, eps, SCHED, t), io[p + "post_x0"])
    close(S.posterior_mean(x, S.x0_from_noise(x, mu, eps, SCHED, t), mu, SCHED, t),
          io[p + "post_mean"])  # fmt: skip
    close(S.posterior_std(SCHED, t, None, x).reshape(1), io[p + "post_std"])
    close(S.posterior_step(x, mu, eps, SCHED, t, None, io[p + "post_z"]), io[p + "post_out"])


def _run(net, mu, io, prefix, sampler, trajectory=None):
    zkey = {"sde": "sde_z", "posterior": "post_z"}.get(sampler)
    x_T = S.start_state(mu, SCHED, io[f"{prefix}.run.x_T_z"])
    close(x_T, io[f"{prefix}.run.x_T"])
    seen = []
    out = S.sample(
        lambda x, t: net(x, mu, t), x_T, mu, SCHED, 100, sampler,
        (lambda i: io[f"{prefix}.run.{zkey}"][i]) if zkey else None,
        lambda i, n, x: seen.append(x),
    )  # fmt: skip
    if trajectory is not None:
        close(torch.stack(seen), io[trajectory])
    return out


@torch.no_grad()
@pytest.mark.parametrize("sampler,key", [("ode", "ode_out"), ("sde", "sde_out"),
                                         ("posterior", "post_out")])  # fmt: skip
def test_pixel_runs(io, pixel, sampler, key):
    traj = "pixel.run.ode_traj" if sampler == "ode" else None
    close(_run(pixel, io["pixel.lq"], io, "pixel", sampler, traj), io[f"pixel.run.{key}"])


@torch.no_grad()
@pytest.mark.parametrize("sampler,tag", [("ode", "ode"), ("sde", "sde"), ("posterior", "post")])
def test_latent_runs(io, latent, sampler, tag):
    net, ae = latent
    z, hidden = ae.encode(io["latent.img_lq"])
    out = _run(net, z, io, "latent", sampler, f"latent.run.{tag}_traj")
    close(out, io[f"latent.run.{tag}_latent"])
    close(ae.decode(out, hidden, io["latent.img_lq"].shape[-2:]), io[f"latent.run.{tag}_img"])


def _shapes(name: str) -> dict:
    d = json.loads((PARITY / "full_shapes.json").read_text())["files"][name]
    return {k: tuple(v) for k, v in d["state_dict"].items()}, d["params"]


@pytest.mark.parametrize("name", [PIXEL, LATENT_NET, LATENT_AE])
def test_full_size_keys_and_params(name):
    """The paper presets at full size have exactly the official keys, shapes and counts
    (built on the meta device: no memory, no time)."""
    _need_fixture()
    shapes, params = _shapes(name)
    preset = RefusionPipeline.presets["paper" if name == PIXEL else "paper-latent"]
    net_name = "ae" if name == LATENT_AE else "noise"
    arch, cfg = preset[net_name]
    from lumen_cli.nets.registry import build_net

    with torch.device("meta"):
        net = build_net(arch, cfg)
    mine = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert mine == shapes
    assert sum(p.numel() for p in net.parameters()) == params
    # and the converter reads the full configuration back from the shapes
    sd = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    read = C.unet_config(sd) if net_name == "ae" else C.nafnet_config(sd)
    assert read == {**read, **cfg}


def test_converter_rejects_a_latent_net_alone():
    _need_fixture()
    with pytest.raises(UsageError):
        C.convert([PARITY / LATENT_NET])


# -- the SDE's closed forms (no fixture) -----------------------------------------------------
def test_marginal_matches_monte_carlo():
    """Simulating the forward SDE with small Euler steps gives the closed-form mean / std."""
    g = torch.Generator().manual_seed(0)
    x0, mu = torch.full((20000,), 0.8), torch.full((20000,), 0.1)
    x, sub = x0.clone(), 20
    for t in range(1, 61):
        th, sig = float(SCHED.thetas[t]), float(SCHED.sigmas[t])
        h = SCHED.dt / sub
        for _ in range(sub):
            x = x + th * (mu - x) * h + sig * math.sqrt(h) * torch.randn(x.shape, generator=g)
    mean = S.marginal_mean(x0[:1], mu[:1], SCHED, 60)
    std = S.marginal_std(SCHED, 60, x0)
    assert float(x.mean()) == pytest.approx(float(mean), abs=4e-3)
    assert float(x.std()) == pytest.approx(float(std), rel=3e-2)


def test_q_sample_statistics():
    g = torch.Generator().manual_seed(1)
    x0, mu = torch.rand(4, 1, 1, 1).expand(4, 1, 64, 64), torch.zeros(4, 1, 64, 64)
    t = torch.tensor([5, 30, 70, 100])
    x = S.q_sample(x0, mu, SCHED, t, torch.randn(x0.shape, generator=g))
    for i, ti in enumerate(t.tolist()):
        assert float(x[i].mean()) == pytest.approx(
            float(S.marginal_mean(x0[i], mu[i], SCHED, ti).mean()), abs=0.02
        )  # noqa: E501
        assert float(x[i].std()) == pytest.approx(float(SCHED.sigma_bars[ti]), rel=0.05)


def test_optimal_reverse_step_recovers_x0():
    """Without noise, x_t on its mean path and x*_{t-1} stepped down to 0 land on x_0."""
    x0, mu = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    x = S.marginal_mean(x0, mu, SCHED, 100)
    for t in range(100, 0, -1):
        x = S.optimal_reverse_step(x, x0, mu, SCHED, t)
        close(x, S.marginal_mean(x0, mu, SCHED, t - 1), rel=1e-4)
    close(x, x0, rel=1e-4)


@pytest.mark.parametrize("sampler", S.SAMPLERS)
@pytest.mark.parametrize("steps", [5, 20, 100])
def test_samplers_with_the_true_noise(sampler, steps):
    """An oracle noise net (the noise that makes x_t consistent with the true x_0) brings the
    posterior sampler to x_0 at any number of steps, and the Euler samplers (SDE, ODE) with an
    error that falls like 1/steps."""
    x0, mu = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    g = torch.Generator().manual_seed(2)

    def oracle(x, t):
        return (x - S.marginal_mean(x0, mu, SCHED, t)) / S.marginal_std(SCHED, t, x)

    x_T = S.start_state(mu, SCHED, torch.randn(mu.shape, generator=g))
    out = S.sample(oracle, x_T, mu, SCHED, steps, sampler,
                   lambda i: torch.randn(mu.shape, generator=g))  # fmt: skip
    tol = 1e-4 if sampler == "posterior" else 0.5 / steps + 1e-3
    assert float((out - x0).abs().mean()) < tol


def test_timesteps():
    assert S.timesteps(100, 100) == list(range(100, 0, -1))
    assert S.timesteps(100, 5) == [100, 80, 60, 40, 20]
    assert S.timesteps(100, 1) == [100]


# -- pipeline ---------------------------------------------------------------------------------
def _built(preset: str) -> RefusionPipeline:
    torch.manual_seed(0)
    return RefusionPipeline(RefusionPipeline.build_nets(preset))


@pytest.fixture(scope="module", params=["lite", "lite-input"])
def lite(request):
    return _built(request.param)


def check_seeded_and_tiled(pipe, steps: int, tol: float) -> None:
    """Same seed: the same picture; tiles (96 px, overlap 32) within ``tol`` of the whole
    image; another seed: another picture."""
    from lumen_cli.pipelines.run import enhance_image

    x = torch.rand(1, 3, 150, 230, generator=torch.Generator().manual_seed(3)) * 0.3
    a = enhance_image(pipe, x, EnhanceOptions(steps=steps, seed=4), tile=None)
    b = enhance_image(pipe, x, EnhanceOptions(steps=steps, seed=4), tile=None)
    c = enhance_image(pipe, x, EnhanceOptions(steps=steps, seed=4), tile=96, overlap=32)
    d = enhance_image(pipe, x, EnhanceOptions(steps=steps, seed=5), tile=None)
    assert a.shape == x.shape and torch.equal(a, b)
    assert float((a - c).abs().max()) < tol
    assert not torch.equal(a, d)


def test_lite_seeded_and_tiled(lite):
    check_seeded_and_tiled(lite, steps=5, tol=0.01)


def test_strip_encoding_matches_whole(lite, monkeypatch):
    from lumen_cli.methods.refusion import windows as W

    ae = lite.ae
    x = torch.rand(1, 3, 200, 96, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        whole = ae.encode(x)[0]
        monkeypatch.setattr(W, "STRIP_PIXELS", 96 * 32)
        strips = encode_latent(ae, x)
    assert strips.shape == whole.shape
    close(strips, whole, rel=1e-3)


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_sampler_option_and_errors(lite, sampler):
    x = torch.rand(1, 3, 32, 48)
    out = lite.enhance(x, {}, (0, 0, 32, 48), EnhanceOptions(steps=3, extra={"sampler": sampler}))
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(UsageError):
        lite.enhance(x, {}, (0, 0, 32, 48), EnhanceOptions(steps=3, extra={"sampler": "ddim"}))
    with pytest.raises(UsageError):
        lite.enhance(x, {}, (0, 0, 32, 48), EnhanceOptions(steps=0))


def test_pixel_preset_runs():
    cfg = {"noise": {"width": 8, "enc_blk_nums": [1, 1, 1, 1]}}
    pipe = RefusionPipeline(RefusionPipeline.build_nets("paper", cfg))
    x = torch.rand(1, 3, 32, 48)
    out = pipe.enhance(x, {}, (0, 0, 32, 48), EnhanceOptions(steps=2))
    assert out.shape == x.shape


def test_decompose_is_refused(lite):
    with pytest.raises(UsageError, match="kind"):
        lite.decompose(torch.rand(1, 3, 16, 16), {}, (0, 0, 16, 16), EnhanceOptions())


def test_losses_backward(lite):
    from lumen_cli.methods.refusion.train import sde_loss

    batch = {"low": torch.rand(2, 3, 64, 64) * 0.2, "high": torch.rand(2, 3, 64, 64)}
    nets = dict(lite.nets.items())
    loss, logs = sde_loss(nets, batch, 0)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and logs
    assert any(p.grad is not None for p in nets["noise"].parameters())


def test_latent_losses_backward():
    """paper-latent (small): the auto-encoder stage's latent-replacing loss and the SDE's
    maximum-likelihood loss on its latents."""
    from lumen_cli.methods.refusion.train import autoencoder_loss, sde_loss

    cfg = {"noise": {"width": 8, "enc_blk_nums": [1, 1]}, "ae": {"ch": 4}}
    torch.manual_seed(0)
    nets = RefusionPipeline.build_nets("paper-latent", cfg)
    batch = {"low": torch.rand(2, 3, 64, 64) * 0.2, "high": torch.rand(2, 3, 64, 64)}
    for loss_fn, name in ((autoencoder_loss, "ae"), (sde_loss, "noise")):
        loss, logs = loss_fn(nets, batch, 0)
        loss.backward()
        assert math.isfinite(float(loss.detach())) and logs
        assert any(p.grad is not None for p in nets[name].parameters())


def test_latent_scale_keeps_the_autoencoder():
    """latent_scale multiplies the latent and divides it back: same weights, same images."""
    from lumen_cli.methods.refusion.nets import LatentUNet

    torch.manual_seed(0)
    a = LatentUNet(ch=4, ch_mult=(2, 4, 4, 8), attn=False)
    b = LatentUNet(ch=4, ch_mult=(2, 4, 4, 8), attn=False, latent_scale=10.0)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        za, ha = a.encode(x)
        zb, hb = b.encode(x)
        close(zb, za * 10, rel=1e-5)
        close(b.decode(zb, hb, (40, 56)), a.decode(za, ha, (40, 56)), rel=1e-5)


# -- lite: mu = the latent of the tone prior's T(x) (lumen addition) ---------------------------
def test_lite_presets_nets():
    from lumen_cli.methods.refusion.nets import PoolLatent

    assert set(RefusionPipeline.build_nets("lite")) == {"tone", "pool", "noise"}
    assert set(RefusionPipeline.build_nets("lite-input")) == {"pool", "noise"}
    for preset in ("lite", "lite-input"):
        nets = RefusionPipeline.build_nets(preset)
        assert nets["noise"].prediction == "x0" and isinstance(nets["pool"], PoolLatent)
        assert not list(nets["pool"].parameters())
    assert RefusionPipeline.build_nets("paper-latent")["noise"].prediction == "noise"


def test_lite_stops_give_the_mean_image():
    """lite's diagnostics: stop=mean and stop=autoencoder (the fixed latent decoded without
    sampling) both give T(x), so what the SDE net adds is measured against T(x) alone."""
    from lumen_cli.prior.tone import curves_for, tone_noise, toned

    pipe = _built("lite")
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1)) * 0.3
    region = (0, 0, 48, 64)
    with torch.no_grad():
        curves = curves_for(pipe.nets, x)
        want = toned(x, curves, noise=tone_noise(x, curves)).clamp(0, 1)
    for extra in ({"stop": "mean"}, {"stop": "autoencoder"}):
        out = pipe.enhance(x, {}, region, EnhanceOptions(steps=2, extra=extra))
        assert out.shape == x.shape
        close(out, want, rel=1e-5)
    out = pipe.enhance(x, {}, region, EnhanceOptions(steps=2))
    assert float((out - want).abs().max()) > 1e-3  # the (untrained) SDE net changes it


def test_stop_autoencoder_skips_the_sde(lite):
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(2)) * 0.3
    region = (0, 0, 32, 48)
    a = lite.enhance(x, {}, region, EnhanceOptions(steps=2, seed=1, extra={"stop": "autoencoder"}))
    b = lite.enhance(x, {}, region, EnhanceOptions(steps=2, seed=2, extra={"stop": "autoencoder"}))
    c = lite.enhance(x, {}, region, EnhanceOptions(steps=2, seed=1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_x0_prediction_gives_the_noise_of_its_x0():
    """predict(): a net predicting x0 - mu gives the eps whose x0 estimate is that x0."""
    from lumen_cli.methods.refusion.nets import ConditionalNAFNet
    from lumen_cli.methods.refusion.train import predict

    torch.manual_seed(0)
    net = ConditionalNAFNet(img_channel=8, width=8, enc_blk_nums=(1, 1), prediction="x0")
    x_t, mu = torch.randn(2, 8, 16, 16) * 3, torch.randn(2, 8, 16, 16) * 3
    for t in (1, 37, 100):
        tt = torch.full((2,), t)
        with torch.no_grad():
            eps, x0 = predict(net, x_t, mu, tt, SCHED)
            close(x0, mu + net(x_t, mu, tt), rel=1e-6)
            close(S.x0_from_noise(x_t, mu, eps, SCHED, tt), x0, rel=1e-3)
    with pytest.raises(ValueError):
        ConditionalNAFNet(prediction="v")


def test_training_pairs_use_the_whole_images_curves():
    """pair(): T of the whole loaded image, then one crop; the losses run on that crop."""
    from lumen_cli.methods.refusion.train import mean_image, pair, sde_loss

    pipe = _built("lite")
    nets = dict(pipe.nets.items())
    batch = {"low": torch.rand(2, 3, 96, 80) * 0.2, "high": torch.rand(2, 3, 96, 80)}
    torch.manual_seed(3)
    low, high = pair(nets, batch, 32)
    assert low.shape == high.shape == (2, 3, 32, 32)
    whole = mean_image(nets, batch["low"])
    hits = [
        torch.equal(low, whole[..., y : y + 32, x : x + 32])
        for y in range(0, 65)
        for x in range(0, 49)
        if torch.equal(high, batch["high"][..., y : y + 32, x : x + 32])
    ]
    assert hits == [True]
    assert pair(nets, batch, None)[0].shape == (2, 3, 96, 80)
    loss, _ = sde_loss(nets, batch, 0, crop=64)
    assert math.isfinite(float(loss.detach()))


def test_sde_stage_caches_the_mean_latent_of_whole_images(monkeypatch):
    """sde_loss on whole images: the latent of T(low) comes from mean_latents' cache, equal to
    encoding T(low) directly; an image seen before is not toned again."""
    from lumen_cli.methods.refusion import train as RT

    pipe = _built("lite")
    nets = dict(pipe.nets.items())
    ae = RT.latent_net(nets)
    low = torch.rand(3, 3, 48, 64) * 0.2
    want = ae.encode(RT.mean_image(nets, low))[0].float()
    torch.testing.assert_close(RT.mean_latents(nets, ae, low[:2]), want[:2])
    calls = []
    real = RT.mean_image
    monkeypatch.setattr(RT, "mean_image", lambda n, x: calls.append(len(x)) or real(n, x))
    torch.testing.assert_close(RT.mean_latents(nets, ae, low), want)
    assert calls == [1]  # only the third image is new
    batch = {"low": low, "high": torch.rand(3, 3, 48, 64)}
    cached, _ = RT.sde_loss(nets, batch, 0)
    assert calls == [1] and math.isfinite(float(cached.detach()))  # all three were cached
    torch.testing.assert_close(RT.endpoints(nets, *RT.pair(nets, batch, None))[0], want)


def test_match_luma_target_has_the_mean_images_luma(monkeypatch):
    """sde_loss(match_luma=True): the clean end is the reference under one linear gain that
    gives it the mean image's mean luma, on whole images (cached latents) and on crops; a mean
    of more than 3 channels (a learned auto-encoder's latent) is refused."""
    from lumen_cli.methods.refusion import train as RT
    from lumen_cli.ops.color import luma

    pipe = _built("lite")
    nets = dict(pipe.nets.items())
    ae = RT.latent_net(nets)
    low, high = torch.rand(2, 3, 48, 64) * 0.2, torch.rand(2, 3, 48, 64) * 0.5
    mean = RT.mean_image(nets, low)
    matched = RT.luma_matched(high, ae.encode(mean)[0] / ae.latent_scale)
    close(luma(matched).mean((1, 2, 3)), luma(mean).mean((1, 2, 3)), rel=1e-3)
    ratio = ((matched / high.clamp_min(1e-3)) ** 2.2)[0][high[0] > 0.05]  # one linear gain
    assert float(ratio.std() / ratio.mean()) < 1e-3
    seen = []
    monkeypatch.setattr(RT.S, "q_sample", lambda x0, *a: seen.append(x0) or x0)
    batch = {"low": low, "high": high}
    for crop in (None, 32):
        torch.manual_seed(0)
        RT.sde_loss(nets, batch, 0, crop=crop, match_luma=True)
        torch.manual_seed(0)
        RT.sde_loss(nets, batch, 0, crop=crop)
        matched_x0, plain_x0 = seen[-2:]
        assert not torch.allclose(matched_x0, plain_x0)
    close(luma(seen[0] / ae.latent_scale).mean((1, 2, 3)), luma(mean).mean((1, 2, 3)), rel=2e-3)
    with pytest.raises(ValueError, match="3-channel"):
        RT.luma_matched(high, torch.rand(2, 8, 6, 8))
    # whole images: the matched latent is memoised per (image, mean), computed once
    mu, high = ae.encode(mean)[0], torch.rand(2, 3, 48, 64) * 0.4  # images not seen above
    want = ae.encode(RT.luma_matched(high, mu / ae.latent_scale))[0]
    real, calls = RT.luma_matched, []
    monkeypatch.setattr(RT, "luma_matched", lambda h, m: calls.append(len(h)) or real(h, m))
    torch.testing.assert_close(RT.matched_latents(ae, high[:1], mu[:1]), want[:1])
    torch.testing.assert_close(RT.matched_latents(ae, high, mu), want)
    torch.testing.assert_close(RT.matched_latents(ae, high, mu), want)
    assert calls == [1, 1]  # the first image once, then only the second


def test_pool_latent_round_trip_and_low_frequency_change():
    from lumen_cli.methods.refusion.nets import PoolLatent

    ae = PoolLatent(factor=8, latent_scale=10.0)
    x = torch.rand(1, 3, 40, 56)
    z, h = ae.encode(x)
    assert z.shape == (1, 3, 6, 8)  # 40 x 56 padded to 48 x 64
    close(ae.decode(z, h, (40, 56), base=x), x, rel=1e-6)
    out = ae.decode(z + 1.0, h, (40, 56), base=x)  # +0.1 on every block mean
    close(out, x + 0.1, rel=1e-5)
    with pytest.raises(ValueError):
        ae.decode(z, h, (40, 56))


def test_strip_encoding_of_the_toned_image(monkeypatch):
    """encode_latent(ae, x, m) in strips matches the whole image's latent of m(x) for a local
    m, here the tone prior's T with fixed curves."""
    from lumen_cli.methods.refusion import windows as W
    from lumen_cli.prior.tone import curves_for, toned

    pipe = _built("lite")
    x = torch.rand(1, 3, 200, 96, generator=torch.Generator().manual_seed(6)) * 0.3
    with torch.no_grad():
        curves = curves_for(pipe.nets, x)
        m = lambda img: toned(img, curves, noise=0.01)  # noqa: E731
        whole = pipe.ae.encode(m(x))[0]
        monkeypatch.setattr(W, "STRIP_PIXELS", 96 * 32)
        strips = encode_latent(pipe.ae, x, m)
    assert strips.shape == whole.shape
    # all but the last latent row, which also covers the padding (T of the padded strip there,
    # the padded T of the whole image here: T's chroma blur differs at the border)
    close(strips[..., :-1, :], whole[..., :-1, :], rel=1e-3)


def test_default_steps_follow_the_noise_nets_parameterisation():
    """lite presets (x0-predicting net): LITE_STEPS; noise-predicting nets (paper): 20."""
    from lumen_cli.methods.refusion.pipeline import LITE_STEPS, NOISE_STEPS

    assert _built("lite").default_steps == LITE_STEPS == 5
    assert _built("lite-input").default_steps == LITE_STEPS
    assert _built("paper").default_steps == NOISE_STEPS == 20


# -- lite-pixel: the pixel SDE behind a pixel-unshuffle stem, mu = T(x) ----------------------
@pytest.fixture(scope="module", params=["lite-pixel", "lite-pixel-input"])
def pixel_lite(request):
    return _built(request.param)


def test_stem_net_keeps_shapes_and_paper_keys():
    from lumen_cli.methods.refusion.nets import ConditionalNAFNet

    net = ConditionalNAFNet(width=8, enc_blk_nums=[1, 1], stem=2, prediction="x0")
    assert net.multiple == 8 and net.intro.in_channels == 24 and net.ending.out_channels == 12
    x = torch.rand(2, 3, 37, 50)
    assert net(x, x, torch.tensor([3, 70])).shape == x.shape
    plain = ConditionalNAFNet(width=8, enc_blk_nums=[1, 1])
    assert plain.multiple == 4 and plain.intro.in_channels == 6
    assert set(plain.state_dict()) == set(net.state_dict())  # only shapes differ


def test_region_noise_is_the_crop_of_one_whole_image_noise():
    from lumen_cli.tiling import region_noise

    H, W = 300, 530
    whole = region_noise(7, 2, (0, 0, H, W), (H, W), block=128)
    assert whole.shape == (1, 3, H, W)
    assert abs(float(whole.mean())) < 0.02 and abs(float(whole.std()) - 1) < 0.02
    part = region_noise(7, 2, (100, 250, 228, 378), (H, W), block=128)
    assert torch.equal(part, whole[..., 100:228, 250:378])
    edge = region_noise(7, 2, (272, 500, 304, 544), (H, W), block=128)  # past the border
    assert torch.equal(edge[..., :28, :30], whole[..., 272:, 500:])
    assert torch.equal(edge[..., 28:, :30], whole[..., -1:, 500:].expand(-1, -1, 4, -1))
    assert not torch.equal(region_noise(7, 3, (0, 0, H, W), (H, W), block=128), whole)
    assert not torch.equal(region_noise(8, 2, (0, 0, H, W), (H, W), block=128), whole)


def test_pixel_lite_seeded_and_tiled(pixel_lite):
    assert pixel_lite.ae is None and pixel_lite.default_steps == 5
    check_seeded_and_tiled(pixel_lite, steps=3, tol=0.02)


def test_pixel_lite_mean_is_the_tone_prior_image():
    """stop=mean gives the SDE's mean: T(x) with a tone net; the (untrained) SDE changes it."""
    from lumen_cli.prior.tone import curves_for, tone_noise, toned

    pipe = _built("lite-pixel")
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1)) * 0.3
    region = (0, 0, 48, 64)
    with torch.no_grad():
        curves = curves_for(pipe.nets, x)
        want = toned(x, curves, noise=tone_noise(x, curves)).clamp(0, 1)
    close(pipe.enhance(x, {}, region, EnhanceOptions(extra={"stop": "mean"})), want, rel=1e-5)
    out = pipe.enhance(x, {}, region, EnhanceOptions(steps=2))
    assert float((out - want).abs().max()) > 1e-3


def test_pixel_lite_training_crop_is_the_crop_of_the_whole_images_mean():
    """pair() tones only the crop plus a margin, with the whole images' curves and noise
    levels (memoised): the crop of T(whole image); the SDE loss trains the stem net."""
    from lumen_cli.methods.refusion import train as RT

    pipe = _built("lite-pixel")
    nets = dict(pipe.nets.items())
    batch = {"low": torch.rand(2, 3, 160, 144) * 0.2, "high": torch.rand(2, 3, 160, 144)}
    whole = RT.mean_image(nets, batch["low"])
    for seed in range(4):
        torch.manual_seed(seed)
        low, high = RT.pair(nets, batch, 64)
        hits = [
            (y, x)
            for y in range(0, 97)
            for x in range(0, 81)
            if torch.equal(high, batch["high"][..., y : y + 64, x : x + 64])
        ]
        assert len(hits) == 1
        y, x = hits[0]
        close(low, whole[..., y : y + 64, x : x + 64], rel=1e-5)
    assert len(nets["tone"].__dict__["_lumen_noise_cache"]) == 2
    loss, _ = RT.sde_loss(nets, batch, 0, crop=64)
    loss.backward()
    assert nets["noise"].intro.weight.grad is not None and math.isfinite(float(loss.detach()))


def test_a_net_with_t_max_trains_and_samples_below_it(monkeypatch):
    """t_max (lite-pixel): the SDE loss draws t in 1..t_max; the reverse process starts at
    t_max from mu + sigma_bar(t_max) z, with the steps spaced below it; extra start overrides."""
    from lumen_cli.methods.refusion import pipeline as P
    from lumen_cli.methods.refusion import train as RT

    torch.manual_seed(0)
    pipe = RefusionPipeline(
        RefusionPipeline.build_nets("lite-pixel-input", {"noise": {"t_max": 10}})
    )
    assert pipe.nets["noise"].t_max == 10
    seen = []
    real_q = S.q_sample
    monkeypatch.setattr(RT.S, "q_sample", lambda *a: seen.append(a[3].clone()) or real_q(*a))
    batch = {"low": torch.rand(16, 3, 32, 32) * 0.2, "high": torch.rand(16, 3, 32, 32)}
    for _ in range(4):
        RT.sde_loss(dict(pipe.nets.items()), batch, 0)
    ts = torch.cat(seen)
    assert int(ts.min()) >= 1 and int(ts.max()) == 10

    runs = []
    real_sample = S.sample
    monkeypatch.setattr(
        P.S,
        "sample",
        lambda fn, x, mu, *a, **k: runs.append((x - mu, a[1])) or real_sample(fn, x, mu, *a, **k),
    )
    x = torch.rand(1, 3, 64, 64) * 0.3
    pipe.enhance(x, {}, (0, 0, 64, 64), EnhanceOptions(steps=5))
    pipe.enhance(x, {}, (0, 0, 64, 64), EnhanceOptions(steps=5, extra={"start": 100}))
    (z10, ts10), (z100, ts100) = runs
    assert ts10 == [10, 8, 6, 4, 2] and ts100 == [100, 80, 60, 40, 20]
    close(z10.std(), S.marginal_std(SCHED, 10, z10), rel=0.05)
    close(z100.std(), torch.tensor(SCHED.max_sigma), rel=0.05)
    with pytest.raises(UsageError):
        pipe.enhance(x, {}, (0, 0, 64, 64), EnhanceOptions(steps=5, extra={"start": 101}))
