"""Diff-Retinex pipeline: shapes, ranges, seeds, training stages and the bundled weights.
Tiny random nets, small generated images (no dataset needed)."""

from pathlib import Path

import pytest
import torch

from lumen_cli.methods.diff_retinex.pipeline import DiffRetinexPipeline
from lumen_cli.ops.resize import work_resize
from lumen_cli.pipelines.base import EnhanceOptions
from lumen_cli.pipelines.registry import METHODS
from lumen_cli.pipelines.run import decompose_image, enhance_image
from lumen_cli.weights.checkpoint import load_nets, save_nets

TINY = {
    "tdn": {"dim": 8, "l_channels": 8, "refinement": 0},
    "rda": {"inner": 8},
    "ida": {"inner": 8, "work_size": 32},
}
BUNDLED = (
    Path(__file__).resolve().parents[1] / "lumen_cli/weights/bundled/diff-retinex-lite.safetensors"
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and far faster on a shared, busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_nets(seed=0):
    torch.manual_seed(seed)
    nets = DiffRetinexPipeline.build_nets("lite", TINY)
    with torch.no_grad():  # the output convs start at zero: give them some weight
        for name in ("rda", "ida"):
            nets[name].out.weight.normal_(0, 0.05)
    return nets


def image(h=40, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, h, w, generator=g) * 0.3).clamp(0, 1)


def test_registry_and_presets():
    assert METHODS["diff-retinex"].load_class() is DiffRetinexPipeline
    assert [s.name for s in DiffRetinexPipeline.stages()] == ["tdn", "tone", "rda", "ida"]
    counts = {}
    for preset in ("lite", "paper"):
        nets = DiffRetinexPipeline.build_nets(preset)
        counts[preset] = sum(p.numel() for n in nets.values() for p in n.parameters())
    assert counts["lite"] < 8e6 < 30e6 < counts["paper"]


def test_enhance_shapes_ranges_and_seed():
    pipe = DiffRetinexPipeline(tiny_nets())
    x = image()
    steps = []
    opts = EnhanceOptions(steps=3, seed=7, progress=lambda w, i, n: steps.append((w, i, n)))
    out = enhance_image(pipe, x, opts, tile=None, precision="fp32")
    assert out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert ("step", 3, 3) in steps
    again = enhance_image(pipe, x, EnhanceOptions(steps=3, seed=7), tile=None, precision="fp32")
    other = enhance_image(pipe, x, EnhanceOptions(steps=3, seed=8), tile=None, precision="fp32")
    assert torch.equal(out, again)
    assert not torch.equal(out, other)


def test_shadow_post_steps_are_the_last_step():
    from lumen_cli.prior.finish import finish_shadows

    pipe = DiffRetinexPipeline(tiny_nets())
    x = image(48, 64) * 0.2
    off = EnhanceOptions(steps=2, extra={"post": False})
    y_off = enhance_image(pipe, x, off, tile=None, precision="fp32")
    y = enhance_image(pipe, x, EnhanceOptions(steps=2), tile=None, precision="fp32")
    assert not torch.equal(y, y_off)
    assert torch.allclose(y, finish_shadows(x, y_off, EnhanceOptions()), atol=1e-5)


def test_tiles_see_the_same_noise_and_illumination():
    pipe = DiffRetinexPipeline(tiny_nets())
    x = image(64, 64)
    ctx = pipe.analyze(x, EnhanceOptions(steps=2), torch.Generator().manual_seed(0))
    ctx["hw"] = (64, 64)
    assert ctx["noise"].shape == (1, 3, 64, 64)
    whole = pipe._adjusted_l(torch.full((1, 1, 64, 64), 0.5), ctx, (0, 0, 64, 64), EnhanceOptions())
    part = pipe._adjusted_l(
        torch.full((1, 1, 32, 32), 0.5), ctx, (16, 32, 48, 64), EnhanceOptions()
    )
    assert torch.allclose(whole[..., 16:48, 32:64], part, atol=1e-5)


def test_decompose_maps():
    pipe = DiffRetinexPipeline(tiny_nets())
    x = image(32, 48)
    maps = decompose_image(pipe, x, EnhanceOptions(steps=2), tile=None, precision="fp32")
    assert maps["reflectance"].shape == (1, 3, 32, 48)
    assert maps["illumination"].shape == (1, 1, 32, 48)
    adj = decompose_image(
        pipe, x, EnhanceOptions(steps=2, extra={"adjusted": True}), tile=None, precision="fp32"
    )
    assert {"reflectance_adjusted", "illumination_adjusted"} <= set(adj)
    for v in adj.values():
        assert float(v.min()) >= 0 and float(v.max()) <= 1


def test_work_resize_keeps_aspect_and_multiple():
    y = work_resize(torch.rand(1, 3, 300, 500), 96)
    assert y.shape[-1] == 96 and y.shape[-2] % 8 == 0 and abs(y.shape[-2] - 58) <= 8


def _pairs(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    high = torch.rand(n, 3, size, size, generator=g) * 0.6 + 0.3
    high = torch.nn.functional.avg_pool2d(high, 3, 1, 1)
    return {"low": high * 0.25, "high": high}


def _mean_loss(stage, nets, batch):
    total = 0.0
    for k in range(4):
        torch.manual_seed(100 + k)
        with torch.no_grad():
            total += float(stage.loss(nets, batch, 0)[0])
    return total / 4


@pytest.mark.parametrize("name", ["tdn", "rda", "ida"])
def test_a_few_training_steps_lower_each_stage_loss(name):
    nets = tiny_nets()
    if name == "rda":  # untrained curves would fix the brightness that the anchored RDA may
        nets.pop("tone", None)  # not change (anchoring: test_rda_x0_estimates_keep_...)
    stage = {s.name: s for s in DiffRetinexPipeline.stages()}[name]
    batch = _pairs()
    for k, m in nets.items():
        m.train(k in stage.trains)
        m.requires_grad_(k in stage.trains)
    params = [p for k in stage.trains for p in nets[k].parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    before = _mean_loss(stage, nets, batch)
    torch.manual_seed(0)
    for step in range(40):
        loss, logs = stage.loss(nets, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _mean_loss(stage, nets, batch)
    assert after < 0.8 * before, (name, before, after)


def test_checkpoint_roundtrip_keeps_diffusion_settings(tmp_path):
    nets = tiny_nets()
    path = tmp_path / "dr.safetensors"
    save_nets(path, "diff-retinex", nets)
    method, loaded, _ = load_nets(path)
    assert method == "diff-retinex"
    assert loaded["ida"].work_size == 32 and loaded["rda"].prediction == "x0"
    assert loaded["ida"].schedule == (1000, 1e-6, 2e-2)
    x = image(32, 32)
    a = enhance_image(
        DiffRetinexPipeline(nets), x, EnhanceOptions(steps=2), tile=None, precision="fp32"
    )
    b = enhance_image(
        DiffRetinexPipeline(loaded), x, EnhanceOptions(steps=2), tile=None, precision="fp32"
    )
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled diff-retinex-lite weights not built yet")
def test_bundled_weights_enhance_a_generated_image():
    method, nets, meta = load_nets(BUNDLED)
    assert method == "diff-retinex"
    pipe = DiffRetinexPipeline(nets)
    # a scene = reflectance (coloured checkerboard) x a smooth illumination ramp, made dark
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    board = ((yy // 16 + xx // 16) % 2).float()
    refl = torch.stack([0.2 + 0.6 * board, 0.3 + 0.4 * board, 0.7 - 0.4 * board], 0)[None]
    light = (0.6 + 0.4 * xx / 127.0).float()
    dark = (refl * light * 0.12).clamp(0, 1)
    out = enhance_image(pipe, dark, EnhanceOptions(steps=5), tile=None, precision="fp32")
    assert out.shape == dark.shape and torch.isfinite(out).all()
    assert float(out.mean()) > 2 * float(dark.mean())
    # the scene survives: the output correlates with the well-lit scene over all channels
    # (red rises and blue falls with the board), and the red channel follows the board
    corr = torch.corrcoef(torch.stack([out.flatten(), (refl * light).flatten()]))[0, 1]
    assert float(corr) > 0.6
    red = torch.corrcoef(torch.stack([out[0, 0].flatten(), board.flatten()]))[0, 1]
    assert float(red) > 0.6


def test_rda_condition_base_gain_brightens_without_clipping():
    from lumen_cli.methods.diff_retinex.pipeline import rda_condition

    r = torch.linspace(0, 0.3, 100).view(1, 1, 10, 10).expand(1, 3, 10, 10)  # a dark R
    ones = torch.ones(1, 1, 10, 10)
    g = torch.tensor([[0.1, 0.1, 0.1, 0.5]])
    plain = (rda_condition(r, ones, ones, g)[:, :3] + 1) / 2
    bright = (rda_condition(r, ones, ones, g, base_gain=0.5)[:, :3] + 1) / 2
    assert torch.allclose(plain, r, atol=1e-6)
    assert float(bright.mean()) > 2 * float(plain.mean())
    flat = bright[0, 0].flatten()
    assert torch.all(flat[1:] > flat[:-1]) and float(flat.max()) < 1.0  # monotone, not clipped


def test_rda_x0_estimates_keep_the_tone_bases_low_frequencies():
    from lumen_cli.methods.diff_retinex.pipeline import rda_denoiser

    class Shifted(torch.nn.Module):  # an x0-predicting "RDA" that darkens and adds a checker
        prediction = "x0"
        schedule = (1000, 1e-6, 1e-2)

        def forward(self, xt, gm, feats):
            return feats - 0.4 + checker

    torch.manual_seed(0)
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float() * 0.1 - 0.05
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4), size=(32, 32), mode="bilinear")
    base = base * 0.5 + 0.25
    feats = base * 2 - 1
    gm = torch.ones(1)
    raw = rda_denoiser(Shifted(), None).model_fn(feats)(feats, gm)
    assert torch.allclose(raw, feats - 0.4 + checker)  # no base: the net's own estimate
    out = (rda_denoiser(Shifted(), base).model_fn(feats)(feats, gm) + 1) / 2
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    # the global shift is gone, the pixel-scale checker (x0 in [-1,1]: /2 in [0,1]) is kept
    assert (out - base - checker / 2)[inner].abs().max() < 0.01
    assert rda_denoiser(Shifted(), base, sigma=0).model_fn(feats)(feats, gm).equal(raw)
    # what the anchor discards (the global shift of -0.4 in [-1,1]: 0.2 in [0,1]) is reported
    drift = []
    rda_denoiser(Shifted(), base, drift=drift).model_fn(feats)(feats, gm)
    assert len(drift) == 1 and abs(float(drift[0]) - 0.2) < 0.02


def test_mdla_fuses_each_of_q_k_v_over_the_three_kernels():
    """MDLA's fused maps are fuse_q(cat of the 3x3, 5x5, 7x7 depth-wise q maps), and so for k
    and v (the paper's multi-scale attention), whatever the grouped form computing them."""
    from lumen_cli.methods.diff_retinex.nets import MDLA, channel_attention

    torch.manual_seed(0)
    m = MDLA(32, 2)
    x = torch.randn(2, 32, 20, 24)
    parts = [conv(m.qkv(x)).chunk(3, dim=1) for conv in m.dw]
    q, k, v = (
        f(torch.cat([p[i] for p in parts], 1)) for i, f in enumerate((m.fuse_q, m.fuse_k, m.fuse_v))
    )
    want = m.out(channel_attention(q, k, v, m.heads, m.temperature))
    assert torch.allclose(m(x), want, atol=1e-5)
    m(x).sum().backward()  # every fuse weight is trained
    assert all(f.weight.grad is not None for f in (m.fuse_q, m.fuse_k, m.fuse_v))
