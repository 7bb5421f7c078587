"""LLDiffusion: parity with the official code (``../shared/parity/lldiffusion``, LOL and LOL-v2
architectures), full-size key coverage and parameter counts, degradation awareness, the joint
loss and the freeze, the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lumen_cli.diffusion.ddpm import ddim_eps_sample
from lumen_cli.methods.lldiffusion import sampling as S
from lumen_cli.methods.lldiffusion.nets import DegEncoder, colour_map, eps_model
from lumen_cli.methods.lldiffusion.presets import PRESETS
from lumen_cli.nets.registry import build_net
from tests.parity import close

PARITY = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "lldiffusion"
FILES = {"lol": ("LOL/best-355-23.32.pth", "io.safetensors"),
         "v2": ("lol-v2-real/best-5499-24.10.pth", "io_v2.safetensors")}  # fmt: skip


@pytest.fixture(scope="module", params=["lol", "v2"])
def fixture(request):
    if not PARITY.is_dir():
        pytest.skip("parity fixture ../shared/parity/lldiffusion not present")
    from safetensors.torch import load_file

    from lumen_cli.methods.lldiffusion.convert import convert

    ck, io = FILES[request.param]
    conv = convert([PARITY / ck])
    for m in conv.nets.values():
        m.eval()
    return request.param, conv, load_file(str(PARITY / io))


@torch.no_grad()
def test_units(fixture):
    kind, conv, io = fixture
    enc, den, gen = (conv.nets[k] for k in ("encoder", "denoiser", "generator"))
    close(colour_map(io["colormap.in"]), io["colormap.out"])
    feats = enc(io["encoder.in"])
    assert len(feats) == (3 if kind == "lol" else 6)
    for i, f in enumerate(feats):
        close(f, io[f"encoder.feat{i}"])
    mu, inter = enc.encoder(io["encoder.in"], features=True)
    close(mu, io["encoder.mu"])
    for i, f in enumerate(inter):
        close(f, io[f"encoder.conv_feat{i}"])
    close(gen(io["input.high_m11"], None, feats), io["deg_unet.out"])
    cond, fn = io["denoiser.cond"], eps_model(enc, den)
    for t in (40, 480, 960):
        t_ = io[f"denoiser.t{t}.t"]
        close(den.temb_mlp(t_), io[f"denoiser.t{t}.temb"])
        close(fn(io[f"denoiser.t{t}.x_t"], cond, t_), io[f"denoiser.t{t}.eps"])
    x = io["denoiser.t480.x_t"]
    close(torch.cat([x, cond, colour_map(cond)], 1), io["denoiser.unet_in"])


def test_schedule(fixture):
    _, _, io = fixture
    ab = S.schedule()
    close(torch.cat([torch.ones(1), ab]), io["schedule.alpha_bar_from_minus1"])
    pairs = S.step_pairs(25)
    assert [t for t, _ in pairs] == io["schedule.ddim25.t_iter"].tolist()
    assert [t for _, t in pairs] == io["schedule.ddim25.t_next_iter"].tolist()
    assert sorted(t for t, _ in pairs) == io["schedule.ddim25.seq"].tolist()
    assert [t for t, _ in S.step_pairs(5)] == io["schedule.ddim5.t_iter"].tolist()
    assert len(S.step_pairs(30)) == 31  # the official quirk


@torch.no_grad()
def test_whole_image_sampling(fixture):
    kind, conv, io = fixture
    fn = eps_model(conv.nets["encoder"], conv.nets["denoiser"])
    cond = S.official_pad(io["ddim25.low"]) * 2 - 1
    close(cond, io["ddim25.cond_padded"])
    for steps in (25, 5):
        key, trace = f"ddim{steps}", []
        x = ddim_eps_sample(
            lambda xt, t: fn(xt, cond, t), io[f"{key}.noise"], S.schedule(), S.step_pairs(steps),
            trace=trace,
        )  # fmt: skip
        xs = [tr[1] for tr in trace] + [x]
        if steps == 5:
            close(torch.stack(xs), io["ddim5.xs"])
        elif kind == "lol":
            close(torch.stack([xs[int(k)] for k in io["ddim25.xs_index"]]), io["ddim25.xs"])
            close(trace[0][2], io["ddim25.step0.eps"])
        else:
            close(x, io["ddim25.final_padded"])
        close(((x[..., :64, :64] + 1) / 2).clamp(0, 1), io[f"{key}.out"])


@torch.no_grad()
def test_patch_sampling(fixture):
    kind, conv, io = fixture
    if kind != "lol":
        pytest.skip("the v2 fixture has no patch mode")
    corners = S.patch_corners(160, 160, 128, 16, cover=False)
    assert torch.tensor(corners).equal(io["patch.corners"])
    fn = S.patch_eps(eps_model(conv.nets["encoder"], conv.nets["denoiser"]), io["patch.cond"],
                     corners, 128, batch=4)  # fmt: skip
    trace = []
    x = ddim_eps_sample(fn, io["patch.noise"], S.schedule(), S.step_pairs(2), trace=trace)
    close(trace[0][2], io["patch.step0.et"])
    close(torch.stack([trace[0][1], trace[1][1], x]), io["patch.xs"])
    close(((x + 1) / 2).clamp(0, 1), io["patch.out"])


def test_patch_corners_cover():
    assert S.patch_corners(136, 150, 128, 16, cover=False) == [(0, 0), (0, 16)]
    assert S.patch_corners(136, 150, 128, 16) == [(0, 0), (0, 16), (0, 22), (8, 0), (8, 16),
                                                   (8, 22)]  # fmt: skip


@pytest.mark.parametrize(
    "preset,name,inference,total",
    [("paper", "LOL/best-355-23.32.pth", 52_794_935, 60_633_388),
     ("paper-v2", "lol-v2-real/best-5499-24.10.pth", 209_331_267, 384_492_742)],
)  # fmt: skip
def test_full_size_keys_and_counts(preset, name, inference, total):
    if not PARITY.is_dir():
        pytest.skip("parity fixture not present")
    ref = json.loads((PARITY / "full_shapes.json").read_text())["checkpoints"][name]["state_dict"]
    official = {"encoder": "encoder", "denoiser": "diff_unet", "generator": "deg_unet"}
    with torch.device("meta"):
        nets = {k: build_net(a, c) for k, (a, c) in PRESETS[preset].items()}
    mine = {f"module.{official[n]}.{k}": list(v.shape)
            for n, m in nets.items() for k, v in m.state_dict().items()}  # fmt: skip
    assert mine == ref  # every key, every shape, nothing extra
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in nets.items()}
    assert counts["encoder"] + counts["denoiser"] == inference
    assert sum(counts.values()) == total


@torch.no_grad()
def test_features_see_noise_level():
    """Same scene, same brightness, only the sensor noise differs: the degradation features
    differ (instance norm removes brightness offsets, not noise)."""
    torch.manual_seed(0)
    enc = DegEncoder(**PRESETS["lite"]["encoder"][1]).eval()
    g = torch.Generator().manual_seed(1)
    clean = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64, generator=g), 3, 1, 1) * 0.2
    noisy = (clean + 0.03 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    noisier = (clean + 0.06 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    f0, f1, f2 = (enc(x * 2 - 1) for x in (clean, noisy, noisier))
    for a, b, c in zip(f0, f1, f2, strict=True):
        d1, d2 = (a - b).abs().mean(), (a - c).abs().mean()
        assert d1 > 1e-3 * a.abs().mean() and d2 > d1


@torch.no_grad()
def test_paper_pipeline_matches_official(fixture):
    """The pipeline's whole-image path (official padding, 25 steps) on the recorded noise."""
    from lumen_cli.methods.lldiffusion.pipeline import LLDiffusionPipeline
    from lumen_cli.pipelines.base import EnhanceOptions

    _, conv, io = fixture
    pipe = LLDiffusionPipeline(conv.nets)
    assert pipe.default_steps == 25
    ctx = {"noise": io["ddim25.noise"], "hw": (64, 64)}
    out = pipe.enhance(io["ddim25.low"], ctx, (0, 0, 64, 64), EnhanceOptions(steps=25))
    close(out, io["ddim25.out"])


def _lite_nets():
    from lumen_cli.methods.lldiffusion.pipeline import LLDiffusionPipeline

    torch.manual_seed(0)
    return LLDiffusionPipeline.build_nets("lite")


def test_joint_loss_and_freeze():
    from lumen_cli.methods.lldiffusion.train import joint_loss

    nets = _lite_nets()
    g = torch.Generator().manual_seed(0)
    batch = {"low": torch.rand(2, 3, 64, 64, generator=g) * 0.2,
             "high": torch.rand(2, 3, 64, 64, generator=g)}  # fmt: skip
    loss, logs = joint_loss(nets, batch, 0, freeze_step=10, image_weight=0.1)
    assert logs["frozen"] == 0
    assert abs(float(loss.detach()) - logs["diff"] - 0.1 * logs["deg"]) < 1e-4
    loss.backward()
    assert nets["encoder"].encoder.conv_7x7.weight.grad.abs().sum() > 0
    assert nets["generator"].conv_in.weight.grad.abs().sum() > 0
    assert nets["tone"].parameters().__next__().grad is None  # the tone prior stays fixed
    for m in nets.values():
        m.zero_grad(set_to_none=True)
    loss, logs = joint_loss(nets, batch, 10, freeze_step=10)
    assert logs["frozen"] == 1 and "deg" not in logs
    assert abs(float(loss.detach()) - logs["diff"]) < 1e-6
    loss.backward()
    assert all(p.grad is None for k in ("encoder", "generator") for p in nets[k].parameters())
    assert nets["denoiser"].conv_in.weight.grad.abs().sum() > 0


def test_joint_loss_sensor_noise_reaches_the_low_image_only(monkeypatch):
    """sensor_noise p: the low images the encoder and the generator's target see are noisy
    8-bit copies; the reference is not touched."""
    from lumen_cli.methods.lldiffusion import train as LT

    seen = []
    real = LT._diffusion_term

    def spy(nets, low, high, *a, **k):
        seen.append((low.clone(), high.clone()))
        return real(nets, low, high, *a, **k)

    monkeypatch.setattr(LT, "_diffusion_term", spy)
    nets = _lite_nets()
    g = torch.Generator().manual_seed(0)
    batch = {"low": torch.rand(2, 3, 64, 64, generator=g) * 0.2,
             "high": torch.rand(2, 3, 64, 64, generator=g)}  # fmt: skip
    with torch.no_grad():
        torch.manual_seed(0)
        LT.joint_loss(nets, batch, 0)
        torch.manual_seed(0)
        LT.joint_loss(nets, batch, 0, sensor_noise=1.0)
    (low0, high0), (low1, high1) = seen
    assert torch.equal(low0, batch["low"]) and torch.equal(high1, batch["high"])
    assert float((low1 - low0).abs().mean()) > 1e-3
    assert torch.equal(low1, (low1 * 255).round() / 255)


def test_joint_loss_crops_after_toning_the_whole_image(monkeypatch):
    """joint_loss(crop=c): one window of c px for every term, T(window) with the curves and
    noise level of the whole images (as the pipeline tones a tile); the anchor σ comes from
    the denoiser's file (``anchor``)."""
    from lumen_cli.methods.lldiffusion import train as LT
    from lumen_cli.methods.lldiffusion.pipeline import anchor_of
    from lumen_cli.prior.tone import ANCHOR_SIGMA, curves_for, tone_noise, toned
    from lumen_cli.train.tone_stage import toned_whole

    nets = _lite_nets()
    assert anchor_of(nets["denoiser"]) == PRESETS["lite"]["denoiser"][1]["anchor"]
    nets["denoiser"].anchor = None  # a file without its own anchor: the tone prior's
    assert anchor_of(nets["denoiser"]) == ANCHOR_SIGMA
    nets["denoiser"].anchor = 0.0
    g = torch.Generator().manual_seed(1)
    batch = {"low": torch.rand(2, 3, 160, 128, generator=g) * 0.2,
             "high": torch.rand(2, 3, 160, 128, generator=g)}  # fmt: skip
    seen = {}

    def spy(nets_, low, high, feats, anchor, base=None, clamp=True):
        seen.update(low=low, high=high, base=base, anchor=anchor, feats=feats, clamp=clamp)
        return (low.mean() * 0 + 1.0), None

    monkeypatch.setattr(LT, "_diffusion_term", spy)
    LT.joint_loss(nets, batch, 0, crop=96, clamp_x0=False)
    assert seen["low"].shape == seen["base"].shape == (2, 3, 96, 96) and seen["anchor"] == 0.0
    assert seen["clamp"] is False  # the loss option reaches the anchored x0
    curves = curves_for(nets, batch["low"])
    noise = tone_noise(batch["low"], curves)
    hits = [(y, x) for y in range(65) for x in range(33)
            if torch.equal(seen["low"], batch["low"][..., y : y + 96, x : x + 96])]  # fmt: skip
    assert len(hits) == 1
    y, x = hits[0]
    assert torch.equal(seen["high"], batch["high"][..., y : y + 96, x : x + 96])
    # the same T(window) (up to float rounding: without autograd the chroma blur is OpenCV's)
    assert torch.allclose(seen["base"], toned(seen["low"], curves, noise=noise), atol=1e-6)
    assert not torch.equal(seen["base"], toned_whole(nets, seen["low"]))  # not the crop's curves


def test_lite_pipeline_seeded_and_tiled():
    from lumen_cli.methods.lldiffusion.pipeline import LLDiffusionPipeline, crop_noise
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    pipe = LLDiffusionPipeline(_lite_nets())
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(3)) * 0.3
    run = lambda seed, tile=None: enhance_image(  # noqa: E731
        pipe, x, EnhanceOptions(seed=seed, steps=2), tile=tile, precision="fp32"
    )
    a, b, c = run(0), run(0), run(1)
    assert a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert run(0, tile=64).shape == x.shape
    noise = torch.randn(1, 3, 96, 96)
    assert torch.equal(crop_noise(noise, (32, 0, 96, 64), (64, 64)), noise[..., 32:, :64])


def test_lite_plain_has_no_tone_prior():
    """lite-plain (the tone prior's ablation): the same nets without the tone net; the U-Net
    predicts x0 from (x_t, input, colour map), trains with the L1 x0 loss, and the pipeline
    runs neither T(x) nor the shadow finish."""
    from lumen_cli.methods.lldiffusion.pipeline import LLDiffusionPipeline
    from lumen_cli.methods.lldiffusion.train import joint_loss
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    torch.manual_seed(0)
    nets = LLDiffusionPipeline.build_nets("lite-plain")
    assert "tone" not in nets and nets["denoiser"].conv_in.in_channels == 9 * 16
    g = torch.Generator().manual_seed(0)
    batch = {"low": torch.rand(2, 3, 64, 64, generator=g) * 0.2,
             "high": torch.rand(2, 3, 64, 64, generator=g)}  # fmt: skip
    loss, logs = joint_loss(nets, batch, 0, freeze_step=10)
    loss.backward()
    assert logs["diff"] > 0 and nets["denoiser"].conv_in.weight.grad.abs().sum() > 0
    pipe = LLDiffusionPipeline(nets)
    assert pipe.lite and not pipe.toned and pipe.default_steps == 4
    x = torch.rand(1, 3, 40, 50, generator=g) * 0.3
    out = enhance_image(pipe, x, EnhanceOptions(steps=2), tile=None, precision="fp32")
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_decompose_is_a_usage_error():
    from lumen_cli.errors import UsageError
    from lumen_cli.methods.lldiffusion.pipeline import LLDiffusionPipeline
    from lumen_cli.pipelines.base import EnhanceOptions

    with pytest.raises(UsageError, match="retinex"):
        LLDiffusionPipeline(_lite_nets()).decompose(None, {}, (0, 0, 1, 1), EnhanceOptions())


def test_tile_features_crop_and_interpolate():
    from lumen_cli.methods.lldiffusion.pipeline import tile_features

    f = torch.randn(1, 2, 8, 12)  # scale 4 of a 32 x 48 padded image
    (whole,) = tile_features([f], (0, 0, 32, 48), (32, 48), (32, 48))
    assert torch.equal(whole, f)
    (crop,) = tile_features([f], (8, 4, 24, 20), (16, 16), (32, 48))
    assert torch.equal(crop, f[..., 2:6, 1:5])
    (half,) = tile_features([f], (2, 0, 18, 16), (16, 16), (32, 48))  # half a feature pixel
    torch.testing.assert_close(half[..., 1:3, :], (f[..., 1:3, :4] + f[..., 2:4, :4]) / 2)


@torch.no_grad()
def test_paper_pipeline_patch_mode(fixture):
    """opts.extra patch=128 reproduces the official 2-step patch run."""
    from lumen_cli.methods.lldiffusion.pipeline import LLDiffusionPipeline
    from lumen_cli.pipelines.base import EnhanceOptions

    kind, conv, io = fixture
    if kind != "lol":
        pytest.skip("the v2 fixture has no patch mode")
    pipe = LLDiffusionPipeline(conv.nets)
    noise = torch.nn.functional.pad(io["patch.noise"], (0, 32, 0, 32))
    ctx = {"noise": noise, "hw": (160, 160)}
    opts = EnhanceOptions(steps=2, extra={"patch": 128, "grid": 16, "batch": 4})
    close(pipe.enhance(io["patch.low"], ctx, (0, 0, 160, 160), opts), io["patch.out"])


@torch.no_grad()
def test_cond_response_is_the_first_convolution_split():
    """forward(x_t, t, feats, cond_response(fixed)) equals forward(cat(x_t, fixed), t, feats):
    the condition's share of the (linear) first convolution computed once per tile."""
    torch.manual_seed(0)
    den = build_net(*PRESETS["lite"]["denoiser"]).eval()
    enc = build_net(*PRESETS["lite"]["encoder"]).eval()
    x_t, fixed = torch.randn(2, 3, 64, 64), torch.randn(1, 9, 64, 64)
    feats = enc(fixed[:, :3].expand(2, -1, -1, -1))
    t = torch.tensor([500.0, 500.0])
    whole = den(torch.cat([x_t, fixed.expand(2, -1, -1, -1)], 1), t, feats)
    split = den(x_t, t, feats, den.cond_response(fixed).expand(2, -1, -1, -1))
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("local", [True, False])
def test_local_unet_ignores_far_pixels(local):
    """With per-pixel norms, no middle attention and concatenation fusion, the U-Net's output
    at a pixel depends only on its receptive field: changing far pixels leaves it unchanged,
    so tiles agree with the whole image. The official GroupNorm U-Net reads the whole input."""
    from lumen_cli.methods.lldiffusion.presets import _unet

    opts = {"norm": "pixel", "mid_attn": False} if local else {}
    mode = "cat" if local else "cattn"
    cfg = _unet(9, 32, 1, [32], mode, True, ch_mult=[1, 1], attn_resolutions=[], **opts)
    torch.manual_seed(0)
    net = build_net("lldiffusion.unet", cfg).eval()
    x, feat = torch.randn(1, 9, 32, 160), torch.randn(1, 32, 32, 160)
    t = torch.tensor([500.0])
    with torch.no_grad():
        a = net(x, t, [feat])
        x2, f2 = x.clone(), feat.clone()
        x2[..., 128:], f2[..., 128:] = torch.randn(1, 9, 32, 32), torch.randn(1, 32, 32, 32)
        b = net(x2, t, [f2])
    near = (a - b)[..., :48].abs().max().item()
    assert (near == 0.0) if local else (near > 1e-3)
    assert (a - b)[..., 128:].abs().max() > 1e-2  # the changed pixels do change the output
