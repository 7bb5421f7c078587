"""LightenDiffusion: parity with the official code (``../shared/parity/lighten-diffusion``:
every unit and the whole 20-step sampling run with its recorded noise), full-size key coverage
and parameter counts, the CTDN's shapes, the sampler's step sequence, the consistency loss, the
unpaired training stages (the relit target, the lite preset's x0 parameterisation) and the
pipeline (seeded, tiles agree with the whole image)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lumen_cli.diffusion import ddpm
from lumen_cli.methods.lighten_diffusion import train as T
from lumen_cli.methods.lighten_diffusion.convert import nets_from_state_dict, split_official
from lumen_cli.methods.lighten_diffusion.pipeline import (
    PRESETS,
    LightenDiffusionPipeline,
    latent_window,
    sample_latent,
)
from lumen_cli.nets.registry import build_net
from tests.parity import close

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "lighten-diffusion"
needs_fixture = pytest.mark.skipif(
    not (FIXTURE / "io.safetensors").is_file(), reason="parity fixture ../shared not present"
)


@pytest.fixture(scope="module")
def io():
    if not (FIXTURE / "io.safetensors").is_file():
        pytest.skip("parity fixture ../shared not present")
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "io.safetensors"))


@pytest.fixture(scope="module")
def nets(io, tmp_path_factory):
    """The reduced official checkpoint through ``lumen weights convert`` and back."""
    from lumen_cli.weights.checkpoint import load_nets
    from lumen_cli.weights.convert import convert

    out = tmp_path_factory.mktemp("ld") / "ld-paper.safetensors"
    _, result = convert("lighten-diffusion", [FIXTURE / "stage2_weight.pth.tar"], out)
    assert set(result.nets) == {"decom", "unet"}
    method, loaded, _ = load_nets(out)
    assert method == "lighten-diffusion"
    return {k: v.float().eval() for k, v in loaded.items()}


@needs_fixture
def test_units(io, nets):
    decom, unet = nets["decom"], nets["unet"]
    with torch.no_grad():
        z, skips = decom.encode(io["encoder.in"])
        for i, f in enumerate(skips):
            close(f, io[f"encoder.pyr{i}"], f"pyr{i}")
        close(z, io["encoder.latent"], "latent")
        for p in ("decom", "decom2"):
            r, lum = decom.retinex(io[f"{p}.in"])
            close(r, io[f"{p}.R"], f"{p}.R")
            close(lum, io[f"{p}.L"], f"{p}.L")
        for t in (950, 500, 0):
            p = f"denoiser.t{t}."
            close(unet.embed(io[p + "t"]), io[p + "temb"], p + "temb")
            close(unet(io[p + "in"], io[p + "t"]), io[p + "eps"], p + "eps")
        _, skips = decom.encode(io["decoder.img"])
        close(decom.decode(io["decoder.pred_fea"], skips), io["decoder.out"], "decoder")


def test_schedule_and_step_sequence(io):
    betas = ddpm.linear_betas_f32(1000, 1e-4, 2e-2)
    close(betas, io["schedule.betas"])
    close(ddpm.alpha_bar_f32(betas), io["schedule.alphas_cumprod"])
    pairs = ddpm.ddim_skip_pairs(1000, 20)
    assert torch.equal(torch.tensor([p[0] for p in pairs]), io["schedule.ddim20.t_visit"])
    assert torch.equal(torch.tensor([p[1] for p in pairs]), io["schedule.ddim20.tnext_visit"])
    assert pairs[0] == (950, 900) and pairs[-1] == (0, -1)
    assert len(ddpm.ddim_skip_pairs(1000, 3)) == 4  # 1000 // 3 = 333: 0, 333, 666, 999


@needs_fixture
@pytest.mark.parametrize("case", ["e2e", "e2e_pad"])
def test_sampling_run(io, nets, case):
    """The whole official restore(): reflect pad to 64, encode, 20 DDIM steps from the recorded
    x_T (per-step x_t and eps), clamp, decode with skips, crop; and the same through the
    pipeline's enhance with the recorded noise as its context."""
    decom, unet = nets["decom"], nets["unet"]
    x = io[f"{case}.in"]
    h, w = x.shape[-2:]
    xp = torch.nn.functional.pad(x, (0, (-w) % 64, 0, (-h) % 64), mode="reflect")
    close(torch.cat([xp, xp], 1), io[f"{case}.net_in"], "net_in")
    trace = []
    with torch.no_grad():
        z, skips = decom.encode(xp)
        cond = 2 * z - 1
        close(cond, io[f"{case}.cond"], "cond")
        x0 = ddpm.ddim_eps_sample(
            lambda xt, t: unet(torch.cat([cond, xt], 1), t),
            io[f"{case}.x_T"],
            ddpm.alpha_bar_f32(ddpm.linear_betas_f32()),
            ddpm.ddim_skip_pairs(1000, 20),
            trace=trace,
        )
        close(torch.tensor([float(t) for t, _, _ in trace]), io[f"{case}.trace.t"], "t")
        close(torch.cat([s[1] for s in trace]), io[f"{case}.trace.x_t"], "trace.x_t")
        close(torch.cat([s[2] for s in trace]), io[f"{case}.trace.eps"], "trace.eps")
        close(x0, io[f"{case}.x0_raw"], "x0_raw")
        out = decom.decode(((x0 + 1) / 2).clamp(0, 1), skips)
        close(out, io[f"{case}.out_full"], "out_full")
        close(out[..., :h, :w], io[f"{case}.out"], "out")
        pipe = LightenDiffusionPipeline(nets)
        from lumen_cli.pipelines.base import EnhanceOptions

        ctx = pipe.analyze(xp, EnhanceOptions(), torch.Generator())
        ctx.update(noise=io[f"{case}.x_T"], hw=xp.shape[-2:])
        got = pipe.enhance(xp, ctx, (0, 0) + xp.shape[-2:], EnhanceOptions())
    close(got[..., :h, :w], io[f"{case}.out"].clamp(0, 1), "pipeline")


@needs_fixture
def test_full_size_keys_and_counts():
    """Every key of the FULL official checkpoint maps onto the paper preset, same shapes, and
    the parameter counts match (27,832,973 = U-Net 20,763,651 + CTDN 7,069,322)."""
    full = json.loads((FIXTURE / "full_shapes.json").read_text())
    spec = full["files"]["stage2_weight.pth.tar"]
    shapes = {k: torch.Size(v) for k, v in spec["state_dict"].items()}
    unet_sd, decom_sd = split_official({k: torch.empty(0) for k in shapes})
    nets = LightenDiffusionPipeline.build_nets("paper")
    for name, sd in (("unet", unet_sd), ("decom", decom_sd)):
        own = {k: v.shape for k, v in nets[name].state_dict().items()}
        prefix = "module.Unet." if name == "unet" else "module.decom."
        assert set(own) == set(sd), name
        assert all(own[k] == shapes[prefix + k] for k in own), name
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in nets.items()}
    assert counts["unet"] == spec["params_by_part"]["module.Unet"]
    parts = spec["params_by_part"]
    assert counts["decom"] == parts["module.decom.ReconNet"] + parts["module.decom.retinex"]
    assert sum(counts.values()) == spec["params"] == 27_832_973


@needs_fixture
def test_reduced_checkpoint_loads_strictly():
    from lumen_cli.weights.convert import find_state_dict, safe_torch_load

    obj = safe_torch_load(FIXTURE / "stage2_weight.pth.tar")
    assert all(k.startswith("module.") for k in obj["state_dict"])
    nets = nets_from_state_dict(find_state_dict(obj, ("state_dict",)))
    assert nets["decom"].lumen_config == {"channels": 16}
    cfg = nets["unet"].lumen_config
    assert (cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"]) == (32, [1, 1, 2, 2], 1)


def test_ctdn_shapes():
    decom = build_net("lighten-diffusion.ctdn", {"channels": 8})
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        z, (f2, f4, f8) = decom.encode(x)
        r, lum = decom.retinex(z)
        out = decom.decode(z, (f2, f4, f8))
    assert z.shape == r.shape == lum.shape == (2, 3, 8, 12)
    assert (f2.shape[1:], f4.shape[1:], f8.shape[1:]) == ((8, 32, 48), (16, 16, 24), (32, 8, 12))
    assert torch.equal(lum[:, 0], lum[:, 1]) and torch.equal(lum[:, 0], lum[:, 2])
    assert 0 < float(z.min()) and float(z.max()) < 1 and 0 < float(r.min()) < float(r.max()) < 1
    assert out.shape == x.shape
    with pytest.raises(ValueError):
        build_net("lighten-diffusion.ctdn", {"channels": 12})


def test_consistency_loss():
    r = torch.full((1, 3, 4, 4), 0.5)
    lum = torch.full((1, 3, 4, 4), 0.25)
    ref = 0.5 * 0.25**0.2
    assert float(T.consistency_loss(torch.full_like(r, ref), r, lum)) == pytest.approx(0, abs=1e-7)
    assert float(T.consistency_loss(torch.full_like(r, ref + 0.1), r, lum)) == pytest.approx(0.1)


def test_unpaired_stages_train():
    """Both stages are unpaired, their losses are finite and give gradients to their nets."""
    stages = LightenDiffusionPipeline.stages()
    assert [s.name for s in stages] == ["ctdn", "lrdm"]
    assert all(s.data == "unpaired" for s in stages)
    torch.manual_seed(0)
    nets = {
        "decom": build_net("lighten-diffusion.ctdn", {"channels": 8}),
        "unet": build_net("lighten-diffusion.unet", {**PRESETS["lite"]["unet"][1], "ch": 32}),
    }
    batch = {"low": torch.rand(2, 3, 64, 64) * 0.2, "normal": torch.rand(2, 3, 64, 64)}
    for st in stages:
        for k, m in nets.items():
            m.requires_grad_(k in st.trains)
        args = {"scc_steps": 2} if st.name == "lrdm" else {"anchor_gamma": 2.2}
        args |= {"colour_p": 1.0, "colour_sat": 2.0}
        loss, logs = st.loss(nets, batch, 0, **args)
        loss.backward()
        assert torch.isfinite(loss) and logs
        grads = [p.grad for k in st.trains for p in nets[k].parameters()]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_residual_decomposition_starts_at_the_prior_and_is_gain_invariant():
    """The lite CTDN's residual heads (zero-initialised) return ``prior_maps`` untrained, and a
    common gain on the latent changes L, not R."""
    from lumen_cli.methods.lighten_diffusion.nets import prior_maps

    torch.manual_seed(0)
    decom = build_net("lighten-diffusion.ctdn", {"channels": 8, "prior_headroom": 0.6})
    z = 0.05 + 0.4 * torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        r, lum = decom.retinex(z)
        r2, lum2 = decom.retinex(0.5 * z)
    r0, l0 = prior_maps(z, 0.6, 2.0)
    assert float((r - r0).abs().max()) < 1e-5 and float((lum[:, :1] - l0).abs().max()) < 1e-5
    assert float((r2 - r).abs().max()) < 1e-5
    assert float((lum2 - 0.5 * lum).abs().max()) < 1e-5
    assert float((r * lum[:, :1] - z).abs().max()) < 1e-5  # R L = z where nothing clamps


def test_latent_anchor_scales_with_linear_gain():
    """A linear-light gain k (``darken`` without noise) scales the power-law anchor by
    k^(1/2.2) exactly, also in the shadows where sRGB's linear toe would not."""
    torch.manual_seed(0)
    x = 0.2 + 0.8 * torch.rand(2, 3, 32, 32)
    a = T.latent_anchor(x)
    d = T.latent_anchor(T.darken(x, gain=(0.1, 0.1), noise=(0.0, 0.0)))
    assert float((d - a * 0.1 ** (1 / 2.2)).abs().max()) < 2e-3
    assert T.latent_anchor(x, None).shape == (2, 3, 4, 4)


def test_vary_colour_permutes_channels_and_raises_saturation():
    """p = 1 without saturation only reorders each image's channels; with saturation (same
    permutations) the luma of linear light is kept where nothing clips and the chroma grows;
    p = 0 is the identity."""
    from lumen_cli.ops.color import luma, srgb_to_linear

    x = 0.2 + 0.6 * torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(T.vary_colour(x, 0.0, 2.0), x)
    torch.manual_seed(0)
    y = T.vary_colour(x, 1.0)
    for a, b in zip(x, y, strict=True):
        assert sorted(a.mean((1, 2)).tolist()) == pytest.approx(sorted(b.mean((1, 2)).tolist()))
    torch.manual_seed(0)
    z = T.vary_colour(x, 1.0, 3.0)
    spread = lambda t: (t.amax(1) - t.amin(1)).mean()  # noqa: E731
    assert float(spread(z)) > 1.2 * float(spread(y))
    inside = ((z > 1e-3) & (z < 1 - 1e-3)).all(1, keepdim=True)
    assert float(inside.float().mean()) > 0.3
    err = (luma(srgb_to_linear(z)) - luma(srgb_to_linear(y)))[inside].abs()
    assert float(err.max()) < 1e-4


def test_ctdn_loss_options_take_effect():
    """colour_p re-colours the crops the stage-1 loss sees; w_bright adds the bright-skips
    transfer term, whose dark copy bright_sensor / bright_jpeg degrade further."""
    torch.manual_seed(0)
    nets = {"decom": build_net("lighten-diffusion.ctdn", {"channels": 8, "prior_headroom": 0.6})}
    batch = {"low": torch.rand(2, 3, 64, 64) * 0.2, "normal": torch.rand(2, 3, 64, 64)}
    losses = {}
    real = {"w_bright": 1.0, "bright_sensor": 1.0, "bright_jpeg": (60, 80)}
    variants = {"plain": {}, "colour": {"colour_p": 1.0}, "bright": {"w_bright": 1.0}}
    for name, kw in {**variants, "bright-real": real}.items():
        torch.manual_seed(1)
        with torch.no_grad():
            loss, logs = T.ctdn_loss(nets, batch, 0, **kw)
        losses[name] = float(loss)
        assert ("bright" in logs) == name.startswith("bright")
    assert losses["colour"] != losses["plain"] and losses["bright"] > losses["plain"]
    assert losses["bright-real"] != losses["bright"]  # sensor noise and JPEG on the dark copy


def test_relit_target_is_the_quotient_relit_to_the_level():
    """The target keeps only the normal crops' mean level: mean target = level; with gamma 1 it
    is a common gain on the low latent, with gamma < 1 the quotient z / L times s L^gamma."""
    torch.manual_seed(0)
    z = 0.01 + 0.1 * torch.rand(2, 3, 8, 8)
    l_low = (0.05 + 0.1 * torch.rand(2, 1, 8, 8)).expand(-1, 3, -1, -1)
    t = T.relit_target(z, l_low, torch.tensor(0.3), 0.8)
    assert float(t.max()) < 1  # no clipping here
    assert t.mean((1, 2, 3)).tolist() == pytest.approx([0.3, 0.3], abs=1e-5)
    ratio = t / (z / l_low * l_low.pow(0.8))
    assert float((ratio.std((1, 2, 3)) / ratio.mean((1, 2, 3))).max()) < 1e-5
    g = T.relit_target(z, l_low, torch.tensor(0.3), 1.0) / z
    assert float((g.std((1, 2, 3)) / g.mean((1, 2, 3))).max()) < 1e-5


def test_relit_target_clips_only_the_product():
    """Where bright areas pass 1 only the product is clipped, the low latent's contrast is kept
    below it, and the clipped mean still reaches the level."""
    torch.manual_seed(0)
    z = 0.01 + 0.2 * torch.rand(2, 3, 8, 8)
    l_low = torch.full((2, 3, 8, 8), 0.2)
    t = T.relit_target(z, l_low, torch.tensor(0.6), 1.0, iters=30)
    assert float(t.max()) == 1.0 and bool((t == 1).any())
    assert t.mean((1, 2, 3)).tolist() == pytest.approx([0.6, 0.6], abs=1e-3)
    for i in range(2):  # one gain per image below the clip
        ratio = (t[i] / z[i])[t[i] < 1]
        assert float(ratio.std() / ratio.mean()) < 1e-5


def test_x0_from_eps_inverts_forward_diffusion():
    torch.manual_seed(0)
    a_bar = T.schedule()
    x0, e = torch.rand(4, 3, 5, 5) * 2 - 1, torch.randn(4, 3, 5, 5)
    t = torch.tensor([0, 10, 500, 999])
    x_t = ddpm.q_sample(x0, t, a_bar, e)
    assert float((ddpm.eps_from_x0(x_t, x0, t.float(), a_bar) - e).abs().max()) < 2e-3


class _ConstX0(torch.nn.Module):
    """An x0-predicting stand-in for the U-Net: always the same latent."""

    pred = "x0"

    def __init__(self, x0):
        super().__init__()
        self.x0 = x0

    def forward(self, x, t):
        return self.x0.expand(x.shape[0], -1, -1, -1)


@pytest.mark.parametrize("steps", [1, 5, 20, 50])
def test_x0_sampler_returns_the_prediction_whatever_the_noise(steps):
    """With an x0-predicting U-Net DDIM (eta 0) ends at its prediction, for every noise seed
    and step count: the brightness is no longer set by the noise."""
    x0 = torch.rand(1, 3, 4, 4) * 1.6 - 0.8
    cond = torch.zeros(2, 3, 4, 4)
    out = sample_latent(_ConstX0(x0), cond, torch.randn(2, 3, 4, 4) * 3, steps)
    assert float((out - (x0 + 1) / 2).abs().max()) < 1e-4


def test_presets_parameterisation():
    """The paper's U-Net predicts eps (parity); the lite preset's predicts x0."""
    paper = build_net("lighten-diffusion.unet", {**PRESETS["paper"]["unet"][1], "ch": 32})
    lite = build_net("lighten-diffusion.unet", PRESETS["lite"]["unet"][1])
    assert (paper.pred, lite.pred) == ("eps", "x0")
    with pytest.raises(ValueError):
        build_net("lighten-diffusion.unet", {"ch": 32, "pred": "v"})


def test_lrdm_relight_target_trains():
    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    batch = {"low": torch.rand(2, 3, 64, 64) * 0.2, "normal": torch.rand(2, 3, 64, 64)}
    nets["decom"].requires_grad_(False)
    loss, logs = T.lrdm_loss(nets, batch, 0, w_scc=0.0, relight=1.0)
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"x0"}  # the lite U-Net learns x0
    assert any(p.grad is not None for p in nets["unet"].parameters())
    nets["unet"].pred = "eps"
    assert set(T.lrdm_loss(nets, batch, 0, w_scc=0.0, relight=1.0)[1]) == {"noise"}


def test_lrdm_fixed_level_ignores_the_normal_crops():
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    torch.manual_seed(0)
    low = torch.rand(2, 3, 64, 64) * 0.2

    def loss(normal, level):
        torch.manual_seed(1)
        with torch.no_grad():
            batch = {"low": low, "normal": normal}
            return float(T.lrdm_loss(nets, batch, 0, w_scc=0.0, relight=1.0, level=level)[0])

    dim, bright = torch.full((2, 3, 64, 64), 0.3), torch.full((2, 3, 64, 64), 0.7)
    assert loss(dim, 0.5) == loss(bright, 0.5)  # the fixed level, whatever the batch
    assert loss(dim, None) != loss(bright, None)  # the batch's own level


def test_pipeline_seeded_and_tiled():
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import decompose_image, enhance_image

    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    pipe = LightenDiffusionPipeline(nets)
    x = torch.rand(1, 3, 100, 140) * 0.3
    opts = EnhanceOptions(steps=3, seed=1)
    a = enhance_image(pipe, x, opts, tile=None, precision="fp32")
    b = enhance_image(pipe, x, opts, tile=None, precision="fp32")
    c = enhance_image(pipe, x, EnhanceOptions(steps=3, seed=2), tile=None, precision="fp32")
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    maps = decompose_image(pipe, x, opts, tile=None, precision="fp32")
    assert maps["reflectance"].shape == x.shape and maps["illumination"].shape == (1, 1, 100, 140)
    # a tile takes the whole image's noise under its own latent pixels
    y = torch.rand(1, 3, 128, 256) * 0.3
    ctx = pipe.analyze(y, opts, torch.Generator().manual_seed(0))
    assert ctx["noise"].shape == (1, 3, 16, 32)
    assert torch.equal(latent_window(ctx["noise"], (0, 128, 128, 256)), ctx["noise"][..., 16:])
    past = latent_window(ctx["noise"], (64, 192, 192, 320))  # reaches past the border
    assert past.shape == (1, 3, 16, 16)
    assert torch.equal(past[..., :8, 0], ctx["noise"][..., 8:, 24])
    assert torch.equal(past[..., 8:, -1], ctx["noise"][..., -1:, -1].expand(-1, -1, 8))


@pytest.mark.parametrize("ref_area", [None, 64 * 64])
def test_light_is_sampled_once_for_the_whole_image(monkeypatch, ref_area):
    """One DDIM run per image, however many tiles; tiles then agree. Past REF_AREA the sample
    is taken on a downscaled copy and its latent gain relights the full-size latent."""
    from lumen_cli.methods.lighten_diffusion import pipeline as P
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    if ref_area:
        monkeypatch.setattr(P, "REF_AREA", ref_area)
    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    pipe = LightenDiffusionPipeline(nets)
    calls = []
    nets["unet"].register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(1, 3, 200, 330) * 0.3
    opts = EnhanceOptions(steps=3, seed=1)
    whole = enhance_image(pipe, x, opts, tile=None, precision="fp32")
    per_run = len(calls)  # the U-Net evaluations of one 3-step DDIM run
    tiled = enhance_image(pipe, x, opts, tile=192, overlap=64, precision="fp32")
    assert len(calls) == 2 * per_run and tiled.shape == x.shape
    assert float((whole - tiled).abs().mean()) < 1 / 255
    ctx = pipe.analyze(x, opts, torch.Generator())
    if ref_area:
        assert ctx["scale"] > 1 and ctx["ref"].shape[-2:] == (64, 128)  # 41x67, padded
    else:
        assert ctx["scale"] == 1.0 and ctx["ref"].shape[-2:] == (256, 384)


def test_skip_gain_inverts_the_latent_power_law():
    from lumen_cli.methods.lighten_diffusion.pipeline import skip_gain

    z = torch.rand(2, 3, 8, 8) * 0.3 + 0.05
    k = torch.tensor([4.0, 9.0]).view(2, 1, 1, 1)
    assert torch.allclose(skip_gain(z * k.pow(1 / 2.2), z), k, rtol=1e-4)
    assert torch.equal(skip_gain(z * 0.5, z), torch.ones(2, 1, 1, 1))  # never darkens


def test_bright_skips_and_chroma_smoothing_lite_only_and_switchable(monkeypatch):
    from lumen_cli.methods.lighten_diffusion import pipeline as P
    from lumen_cli.methods.lighten_diffusion.pipeline import apply_exposure
    from lumen_cli.pipelines.base import EnhanceOptions

    # a stand-in LRDM that relights the low latent by a known factor
    monkeypatch.setattr(P, "sample_latent", lambda u, cond, *a, **k: (cond + 1) / 2 * 2.5)

    torch.manual_seed(0)
    small = {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    lite = LightenDiffusionPipeline(LightenDiffusionPipeline.build_nets("lite", small))
    paper = LightenDiffusionPipeline(LightenDiffusionPipeline.build_nets("paper", small))
    assert lite.bright_skips and not paper.bright_skips
    assert lite.chroma == P.CHROMA_SIGMA > 0 and paper.chroma == 0
    assert lite.ablations == {
        "without bright skips": {"bright_skips": False},
        "without chroma smoothing": {"chroma": 0},
        "without dequantisation": {"dequantize": 0},
    }
    x = torch.rand(1, 3, 64, 64) * 0.1  # off the 8-bit grid: no dequantisation
    region = (0, 0, 64, 64)

    def run(extra):
        opts = EnhanceOptions(steps=2, seed=0, extra=extra)
        ctx = {**lite.analyze(x, opts, torch.Generator().manual_seed(0)), "hw": (64, 64)}
        with torch.no_grad():
            return lite.enhance(x, ctx, region, opts), ctx["light"]

    on, light_on = run({})
    off, light_off = run({"bright_skips": False})
    assert torch.equal(light_off["skip_gain"], torch.ones(1, 1, 1, 1))
    g = light_on["skip_gain"]
    assert torch.equal(light_on["latent"], light_off["latent"])  # the same sample
    decom = lite.nets["decom"]
    with torch.no_grad():
        _, skips = decom.encode(apply_exposure(x, g))
        decoded = decom.decode(light_on["latent"], skips).float().clamp(0, 1)
    expected = P.smooth_chroma(decoded, P.CHROMA_SIGMA).clamp(0, 1)
    assert torch.allclose(on, expected, atol=1e-6)
    plain, _ = run({"chroma": 0})
    assert torch.allclose(plain, decoded, atol=1e-6) and not torch.allclose(plain, on)
    assert 2.5**2.2 * 0.99 < float(g) < 2.5**2.2 * 1.01 and not torch.allclose(on, off)


def test_dequantisation_lite_only_8bit_only_and_switchable(monkeypatch):
    """The lite pipeline dequantises an 8-bit input (reference and tiles alike), not a
    16-bit one; the paper preset never does; ``extra dequantize = 0`` turns it off."""
    from lumen_cli.methods.lighten_diffusion import pipeline as P
    from lumen_cli.pipelines.base import EnhanceOptions

    monkeypatch.setattr(P, "sample_latent", lambda u, cond, *a, **k: (cond + 1) / 2 * 2.5)
    torch.manual_seed(0)
    small = {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    lite = LightenDiffusionPipeline(LightenDiffusionPipeline.build_nets("lite", small))
    paper = LightenDiffusionPipeline(LightenDiffusionPipeline.build_nets("paper", small))
    x8 = torch.randint(0, 8, (1, 3, 64, 64)).float() / 255
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    opts = EnhanceOptions(steps=2, seed=0)
    off = EnhanceOptions(steps=2, seed=0, extra={"dequantize": 0})
    assert lite.analyze(x8, opts, gen())["quant"] == (1 / 255, P.DEQUANT_SIGMA)
    assert lite.analyze(x8 + 1e-4, opts, gen())["quant"][0] == 0.0  # not on the 8-bit grid
    assert paper.analyze(x8, opts, gen())["quant"] == (0.0, 0.0)
    assert lite.analyze(x8, off, gen())["quant"] == (0.0, 0.0)
    ref_on, ref_off = lite.analyze(x8, opts, gen())["ref"], lite.analyze(x8, off, gen())["ref"]
    assert torch.allclose(ref_on, P.dequantize_luma(x8, 1 / 255, P.DEQUANT_SIGMA, P.DEQUANT_ITERS))
    assert torch.equal(ref_off, x8)

    def run(o):
        ctx = {**lite.analyze(x8, o, gen()), "hw": (64, 64)}
        with torch.no_grad():
            return lite.enhance(x8, ctx, (0, 0, 64, 64), o)

    assert not torch.allclose(run(opts), run(off))


def test_dequantised_8bit_input_tiles_like_the_whole_image(dim_image):
    """With the input on the 8-bit grid (dequantisation on), tiles still agree with the whole
    image within the common test's bounds (the dequantisation's reach is inside the overlap)."""
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    pipe = LightenDiffusionPipeline(nets)
    x = torch.from_numpy(dim_image(320, 448)).permute(2, 0, 1)[None]
    x = (x * 255).round() / 255
    opts = EnhanceOptions(steps=2, seed=0)
    assert pipe.analyze(x, opts, torch.Generator())["quant"][0] == 1 / 255
    whole = enhance_image(pipe, x, opts, tile=None, precision="fp32")
    tiled = enhance_image(pipe, x, opts, tile=192, overlap=64, precision="fp32")
    err = (whole - tiled).abs()
    assert float(err.mean()) < 1 / 255 and float(err.max()) < 24 / 255
