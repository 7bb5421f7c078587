"""KinD: nets, Retinex losses, stage losses, pipeline, bundled weights (tiny nets, small images)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lumen_cli.errors import UsageError
from lumen_cli.methods.kind.pipeline import KinDPipeline
from lumen_cli.methods.kind.train import _ratio_target
from lumen_cli.nets.registry import build_net
from lumen_cli.pipelines.base import EnhanceOptions
from lumen_cli.retinex import losses as RL
from lumen_cli.train.synth import add_sensor_noise

BUNDLED = Path(__file__).resolve().parents[1] / "lumen_cli/weights/bundled/kind-lite.safetensors"


def tiny_nets(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {
        "decom": build_net("kind.decom", {"width": 4}),
        "restore": build_net("kind.restore", {"widths": [4, 8, 8, 8, 8], "convs": 1}),
        "adjust": build_net("kind.adjust", {"width": 4, "convs": 2}),
        "ratio": build_net("kind.ratio", {"width": 4, "size": 16, "target": 0.42}),
    }


def smooth_image(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


# -- nets -----------------------------------------------------------------------------------
def test_paper_preset_matches_published_sizes():
    nets = KinDPipeline.build_nets("paper")
    n = {k: sum(p.numel() for p in v.parameters()) for k, v in nets.items()}
    assert n["decom"] == 235_876  # ≈ 0.24 M
    assert abs(n["restore"] - 7.8e6) < 0.1e6  # ≈ 7.8 M
    assert n["adjust"] == 19_393  # ≈ 19 K
    lite = KinDPipeline.build_nets("lite")
    assert sum(p.numel() for p in lite["restore"].parameters()) < n["restore"] / 3


def test_net_shapes_and_ranges():
    nets = tiny_nets()
    x = torch.rand(2, 3, 32, 48)
    r, l = nets["decom"](x)
    assert r.shape == (2, 3, 32, 48) and l.shape == (2, 1, 32, 48)
    assert 0 <= r.min() and r.max() <= 1 and 0 <= l.min() and l.max() <= 1
    rr = nets["restore"](r, l)
    assert rr.shape == (2, 3, 32, 48) and 0 <= rr.min() and rr.max() <= 1
    for ratio in (2.0, torch.tensor([1.0, 5.0]), torch.full((2, 1, 32, 48), 3.0)):
        la = nets["adjust"](l, ratio)
        assert la.shape == (2, 1, 32, 48) and 0 <= la.min() and la.max() <= 1
    log_a = nets["ratio"](x * 0.1)
    assert log_a.shape == (2,) and torch.isfinite(log_a).all()


def test_ratio_net_prior_when_untrained():
    net = build_net("kind.ratio", {"width": 4, "size": 16, "target": 0.4})  # zero-init head
    x = torch.full((1, 3, 32, 32), 0.1)
    assert math.isclose(float(net(x).detach().exp()), 4.0, rel_tol=1e-4)  # 0.4 / mean(max-RGB)


# -- Retinex losses on hand-made tensors -----------------------------------------------------
def test_gradients_of_a_ramp():
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 3, 5) * 0.1
    gx, gy = RL.gradients(x)
    assert torch.allclose(gx[..., :4], torch.full((1, 1, 3, 4), 0.1))
    assert (gx[..., 4] == 0).all() and (gy == 0).all()


def test_reconstruction_and_reflectance_similarity():
    r = torch.full((1, 3, 4, 4), 0.5)
    l = torch.full((1, 1, 4, 4), 0.5)
    assert float(RL.reconstruction(r, l, torch.full((1, 3, 4, 4), 0.25))) == 0.0
    assert math.isclose(float(RL.reconstruction(r, l, torch.zeros(1, 3, 4, 4))), 0.25)
    rs = float(RL.reflectance_similarity(r, torch.full_like(r, 0.2)))
    assert math.isclose(rs, 0.3, rel_tol=1e-6)


def step_map(h: int, w: int, k: int, a: float, c: int = 1) -> torch.Tensor:
    """0 left of column k+1, a from there on: one x-gradient of size a per row, at column k."""
    x = torch.zeros(1, c, h, w)
    x[..., k + 1 :] = a
    return x


def test_illumination_smoothness_weighted_by_image_edges():
    h, w = 4, 8
    l = step_map(h, w, 3, 0.5)
    assert float(RL.illumination_smoothness(torch.full((1, 1, h, w), 0.3), l)) == 0.0
    edge = step_map(h, w, 3, 1.0, c=3)  # gray step of 1 at the same place
    assert math.isclose(float(RL.illumination_smoothness(l, edge)), 0.5 / w, rel_tol=1e-5)
    flat = torch.zeros(1, 3, h, w)  # no image edge: divided by eps = 0.01
    assert math.isclose(float(RL.illumination_smoothness(l, flat)), 50.0 / w, rel_tol=1e-5)


def test_mutual_consistency_value():
    h, w, a = 4, 8, 0.05
    v = float(RL.mutual_consistency(step_map(h, w, 2, a), step_map(h, w, 2, a)))
    assert math.isclose(v, 2 * a * math.exp(-10 * 2 * a) / w, rel_tol=1e-5)
    # a strong shared edge costs less than a weak one (the point of M·exp(-cM))
    strong = float(RL.mutual_consistency(step_map(h, w, 2, 0.9), step_map(h, w, 2, 0.9)))
    assert strong < v


def test_gradient_l2_and_decomposition_loss_weights():
    ramp = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 2, 6) * 0.1
    v = float(RL.gradient_l2(ramp, torch.zeros_like(ramp), gray=False))
    assert math.isclose(v, 0.01 * 5 / 6, rel_tol=1e-5)
    g = torch.Generator().manual_seed(1)
    r1, r2 = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    l1, l2 = torch.rand(1, 1, 8, 8, generator=g), torch.rand(1, 1, 8, 8, generator=g)
    i1, i2 = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    total, logs = RL.decomposition_loss(r1, l1, r2, l2, i1, i2)
    expect = logs["rec"] + 0.01 * logs["rs"] + 0.15 * logs["is"] + 0.2 * logs["mc"]
    assert math.isclose(float(total), expect, rel_tol=1e-5)


def test_ratio_target_and_sensor_noise():
    a = torch.full((2, 1, 4, 4), 0.1)
    b = torch.full((2, 1, 4, 4), 0.4)
    assert torch.allclose(_ratio_target(a, b), torch.tensor([4.0, 4.0]))
    x = torch.full((4, 3, 16, 16), 0.2)
    torch.manual_seed(0)
    assert torch.equal(add_sensor_noise(x, p=0.0), x)
    y = add_sensor_noise(x, p=1.0)
    assert 0 <= y.min() and y.max() <= 1 and y.std() > 0.001


# -- training: a few steps of each stage on generated pairs lower its loss ------------------------
@pytest.mark.parametrize("stage_name", ["decomposition", "restoration", "adjustment", "joint"])
def test_stage_steps_lower_the_loss(stage_name):
    torch.manual_seed(0)
    nets = tiny_nets()
    stage = {s.name: s for s in KinDPipeline.stages()}[stage_name]
    high = smooth_image(4, 32, 32, seed=3) * 0.6 + 0.2
    batch = {"low": high * 0.15, "high": high}
    for name, net in nets.items():
        net.train(name in stage.trains)
        net.requires_grad_(name in stage.trains)
    params = [p for n in stage.trains for p in nets[n].parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for step in range(40):
        torch.manual_seed(100 + step % 2)  # same noise draws recur: a fair before/after
        loss, logs = stage.loss(nets, batch, step)
        assert torch.isfinite(loss) and all(math.isfinite(v) for v in logs.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-4:]) < 0.9 * sum(losses[:4]), losses


def test_joint_loss_target_luma_takes_brightness_out_of_the_target():
    """With target_luma, references that differ only in exposure give (almost) one loss."""
    from lumen_cli.methods.kind.train import joint_loss

    nets = {n: net.eval() for n, net in tiny_nets().items()}
    high = smooth_image(2, 32, 32, seed=4) * 0.5 + 0.1
    darker = ((high**2.2) * 0.5) ** (1 / 2.2)
    low = high * 0.15

    def loss(ref, **kw):
        torch.manual_seed(7)  # same crops
        with torch.no_grad():
            return float(joint_loss(nets, {"low": low, "high": ref}, 0, noise_p=0, **kw)[0])

    a, b = loss(high, target_luma=0.4), loss(darker, target_luma=0.4)
    assert abs(a - b) < 0.02 * a
    assert abs(loss(darker) - b) > 0.05 * b


def test_joint_loss_post_compares_the_finished_output():
    """post=True: the loss sees finish_shadows' output, and gradients pass through it to the
    trained nets; without a tone net (no post-step at inference) the loss is unchanged."""
    from lumen_cli.methods.kind.train import joint_loss
    from lumen_cli.prior.tone import TONE_NET

    torch.manual_seed(2)
    nets = {n: net.eval() for n, net in tiny_nets().items()}
    high = smooth_image(1, 32, 32, seed=3) * 0.5
    low = high * 0.1

    def loss(ns, **kw):
        torch.manual_seed(7)  # same crops
        with torch.no_grad():
            return float(joint_loss(ns, {"low": low, "high": high}, 0, noise_p=0, **kw)[0])

    assert loss(nets, post=True) == loss(nets)
    lite = {**nets, "tone": build_net(*TONE_NET).eval()}
    assert loss(lite, post=True) != loss(lite)
    params = [p for n in ("restore", "adjust", "ratio") for p in lite[n].parameters()]
    torch.manual_seed(7)
    joint_loss(lite, {"low": low, "high": high}, 0, noise_p=0, post=True)[0].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


# -- pipeline -------------------------------------------------------------------------------
def test_pipeline_enhance_decompose_and_determinism():
    pipe = KinDPipeline(tiny_nets())
    x = smooth_image(1, 32, 48, seed=5) * 0.2
    opts = EnhanceOptions()
    ctx = {**pipe.analyze(x, opts, torch.Generator()), "hw": (32, 48)}
    assert ctx["alpha"].shape == (1,) and float(ctx["alpha"]) > 1  # dark input -> brighten
    y = pipe.enhance(x, ctx, (0, 0, 32, 48), opts)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    y2 = KinDPipeline(tiny_nets()).enhance(x, ctx, (0, 0, 32, 48), opts)
    assert torch.equal(y, y2)
    maps = pipe.decompose(x, ctx, (0, 0, 32, 48), opts)
    assert maps["reflectance"].shape == (1, 3, 32, 48)
    assert maps["illumination"].shape == (1, 1, 32, 48)
    assert maps["illumination_adjusted"].shape == (1, 1, 32, 48)
    for t in maps.values():
        assert 0 <= t.min() and t.max() <= 1
    for extra in ({"darken_shadows": True}, {"blend_input": True}):
        z = pipe.enhance(x, ctx, (0, 0, 32, 48), EnhanceOptions(extra=extra))
        assert z.shape == x.shape and 0 <= z.min() and z.max() <= 1 and not torch.equal(z, y)


def test_shadow_post_steps_finish_the_tone_prior_pipeline_only():
    """With a tone net (lite) the output is finish_shadows of the plain product; ``post``
    False gives that product; without a tone net (paper) nothing changes."""
    from lumen_cli.pipelines.run import enhance_image
    from lumen_cli.prior.finish import dct_deblock, shadow_floor
    from lumen_cli.prior.tone import TONE_NET

    x = smooth_image(1, 32, 48, seed=9) * 0.1
    x[..., :8, :] = 0  # a black band: T(0) = 0
    nets = tiny_nets()
    plain = KinDPipeline(dict(nets))
    off = EnhanceOptions(extra={"post": False})

    def run(pipe, opts):
        return enhance_image(pipe, x, opts, tile=None, precision="fp32")

    assert torch.equal(run(plain, EnhanceOptions()), run(plain, off))
    torch.manual_seed(1)
    lite = KinDPipeline({**nets, "tone": build_net(*TONE_NET)})
    y_off, y = run(lite, off), run(lite, EnhanceOptions())
    assert torch.allclose(y, shadow_floor(dct_deblock(x, y_off)), atol=1e-5)
    dark = y_off < 1 / 255
    assert dark.any() and (y[dark] > y_off[dark] + 2 / 255).all()  # blacks lifted to a grey


def test_exposure_scales_the_light_ratio():
    pipe = KinDPipeline(tiny_nets())
    x = smooth_image(1, 32, 32, seed=6) * 0.2
    a1 = pipe.analyze(x, EnhanceOptions(), torch.Generator())
    a2 = pipe.analyze(x, EnhanceOptions(exposure=2.0), torch.Generator())
    assert torch.allclose(a2["alpha"], 2 ** (1 / 2.2) * a1["alpha0"])  # linear light x 2
    with pytest.raises(UsageError):
        EnhanceOptions(exposure=0.0)


def test_fallback_ratio_without_ratio_net():
    nets = tiny_nets()
    del nets["ratio"]
    pipe = KinDPipeline(nets)
    a = pipe.analyze(torch.full((1, 3, 16, 16), 0.105), EnhanceOptions(), torch.Generator())
    assert math.isclose(float(a["alpha"]), 4.0, rel_tol=1e-4)


@pytest.mark.skipif(not BUNDLED.exists(), reason="kind-lite.safetensors not shipped yet")
def test_bundled_weights_load_and_enhance():
    from lumen_cli.weights.checkpoint import load_nets

    method, nets, meta = load_nets(BUNDLED)
    assert method == "kind" and {"decom", "restore", "adjust"} <= set(nets)
    pipe = KinDPipeline(nets)
    x = smooth_image(1, 64, 64, seed=7) * 0.5 + 0.02
    x = x * 0.25  # a dim picture
    opts = EnhanceOptions()
    ctx = {**pipe.analyze(x, opts, torch.Generator()), "hw": (64, 64)}
    y = pipe.enhance(x, ctx, (0, 0, 64, 64), opts)
    assert y.shape == x.shape and torch.isfinite(y).all() and 0 <= y.min() and y.max() <= 1
    assert y.mean() > 2 * x.mean()  # brightened
    brighter = pipe.enhance(x, {**ctx, "alpha": ctx["alpha"] * 2}, (0, 0, 64, 64), opts)
    darker = pipe.enhance(x, {**ctx, "alpha": ctx["alpha"] * 0.5}, (0, 0, 64, 64), opts)
    assert darker.mean() < y.mean() < brighter.mean()


def test_bundled_exposure_two_holds_the_highlights():
    """--exposure 2 on a picture whose default rendering is already bright: brighter, yet
    the highlights roll off (hue kept, nothing pure white) instead of clipping."""
    from lumen_cli.weights.checkpoint import load_nets

    pipe = KinDPipeline(load_nets(BUNDLED)[1])
    x = (smooth_image(1, 64, 64, seed=8) * 0.3 + 0.05).clamp(0, 1)
    outs = {}
    for e in (1.0, 2.0):
        opts = EnhanceOptions(exposure=e)
        ctx = {**pipe.analyze(x, opts, torch.Generator()), "hw": (64, 64)}
        outs[e] = pipe.enhance(x, ctx, (0, 0, 64, 64), opts)
    y1, y2 = outs[1.0], outs[2.0]
    assert y2.mean() > 1.2 * y1.mean()
    assert float((y1 * 2).amax(1).ge(1).float().mean()) > 0.2  # a plain 2x gain would clip
    assert float(y2.amax(1).ge(254.5 / 255).float().mean()) < 0.02
    bright = y1.amax(1) > 0.6  # the hue of the highlights is kept
    rg1 = y1[:, :2] / y1.sum(1, keepdim=True)
    rg2 = y2[:, :2] / y2.sum(1, keepdim=True)
    assert float((rg1 - rg2).abs().amax(1)[bright].median()) < 0.02


def test_illumination_prior_value():
    img = torch.zeros(1, 3, 4, 4)
    img[:, 1] = 0.6  # max-RGB = 0.6 everywhere
    assert math.isclose(
        float(RL.illumination_prior(torch.full((1, 1, 4, 4), 0.4), img)), 0.2, rel_tol=1e-6
    )


def test_residual_heads_start_from_the_identity():
    torch.manual_seed(0)
    x = smooth_image(2, 32, 32, seed=8) * 0.5 + 0.1
    decom = build_net("kind.decom", {"width": 4, "residual": True})
    r, l = decom(x)
    lsafe = torch.maximum(l, x.amax(1, keepdim=True))
    assert torch.allclose(r, (x / lsafe).clamp(1e-3, 1 - 1e-3), atol=1e-5)
    restore = build_net("kind.restore", {"widths": [4, 8, 8], "convs": 1, "residual": True})
    assert torch.allclose(restore(r, l), r.clamp(1e-3, 1 - 1e-3), atol=1e-5)
    adjust = build_net("kind.adjust", {"width": 4, "convs": 2, "residual": True})
    la = adjust(torch.full((1, 1, 8, 8), 0.1), 3.0)
    assert torch.allclose(la, torch.full_like(la, 0.3), atol=1e-5)
    la = adjust(torch.full((1, 1, 8, 8), 0.5), 4.0)  # clipped gain
    assert torch.allclose(la, torch.full_like(la, 1 - 1e-3), atol=1e-5)


def test_odds_base_adjustment_is_a_soft_gain():
    adjust = build_net("kind.adjust", {"width": 4, "convs": 2, "residual": True, "base": "odds"})
    l = torch.tensor([0.05, 0.2, 0.5, 0.9]).view(1, 1, 1, 4)
    la = adjust(l, 4.0).detach()
    expect = 4 * l / (1 - l + 4 * l)  # odds × 4
    assert torch.allclose(la, expect, atol=1e-5)
    assert (la.diff(dim=-1) > 0).all() and la.max() < 1  # monotone, no clipping
    assert torch.allclose(adjust(l, 1.0).detach(), l, atol=1e-5)  # α = 1: unchanged


def test_loader_runs_kind_channels_last_with_the_same_values():
    from lumen_cli.pipelines.load import load_pipeline
    from lumen_cli.pipelines.run import enhance_image

    pipe = load_pipeline("kind")
    conv = next(m for m in pipe.nets.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = smooth_image(1, 96, 128, seed=3) * 0.2
    opts = EnhanceOptions(seed=0)
    y_nhwc = enhance_image(pipe, x, opts, precision="fp32")
    pipe.nets.to(memory_format=torch.contiguous_format)
    pipe.channels_last = False  # this instance only: the plain NCHW run of the same nets
    y_nchw = enhance_image(pipe, x, opts, precision="fp32")
    assert (y_nhwc - y_nchw).abs().max() < 1e-4
