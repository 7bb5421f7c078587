"""Diff-Retinex ``paper`` preset against the authors' code: the parity fixture in
../shared/parity/diff-retinex (reduced-width official checkpoints and the recorded inputs and
outputs of every unit; skipped without it), converted through ``lumen weights convert``, and
the full-size key map of ``full_shapes.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.parity import close

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "parity" / "diff-retinex"
FILES = {
    "tdn": "model/Diff_TDN/weights/checkpoint_LOL_Diff_TDN.pth",
    "rda": "model/Diff_RDA/weights/best_gen.pth",
    "ida": "model/Diff_IDA/weights/best_gen.pth",
}

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "io.safetensors").is_file(), reason="parity fixture ../shared not present"
)


@pytest.fixture(scope="module")
def io():
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "io.safetensors"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The reduced official files converted by ``lumen weights convert`` and loaded back the
    way ``lumen enhance --weights`` loads them. The RDA's reduced GroupNorm count (4) is not
    in the tensors: its reduced config JSON goes in as a further source, as a user would pass
    the official one."""
    from lumen_cli.pipelines.load import load_pipeline
    from lumen_cli.weights.convert import convert

    tmp = tmp_path_factory.mktemp("dr")
    cfg = json.loads((FIXTURE / "small_config.json").read_text())
    rda_json = tmp / "Diff_RDA_val.json"
    text = json.dumps(cfg["reduced_json_Diff_RDA"], indent=1)  # with a comment, as the authors'
    rda_json.write_text(text.replace('"sr3",', '"sr3", // use the sr3 network structure', 1))
    out = tmp / "dr-paper.safetensors"
    _, result = convert("diff-retinex", [FIXTURE / "model", rda_json], out)
    assert set(result.nets) == {"tdn", "rda", "ida"} and not result.notes
    torch.set_num_threads(1)
    return load_pipeline("diff-retinex", weights=out), out


def test_conversion_dispatches_to_the_official_recipe(converted):
    from lumen_cli.methods.diff_retinex.paper_pipeline import PaperDiffRetinexPipeline
    from lumen_cli.weights.checkpoint import read_metadata

    pipe, path = converted
    assert isinstance(pipe, PaperDiffRetinexPipeline)
    meta = read_metadata(path)
    assert meta["lumen.preset"] == "paper"
    names = [f["file"] for f in json.loads(meta["lumen.provenance"])["converted_from"]]
    assert "checkpoint_LOL_Diff_TDN.pth" in names and names.count("best_gen.pth") == 2
    reduced = json.loads((FIXTURE / "small_config.json").read_text())["fixture"]["params_reduced"]
    counts = {k: sum(p.numel() for p in pipe.nets[k].parameters()) for k in ("tdn", "rda", "ida")}
    assert list(counts.values()) == list(reduced.values())


def test_tdn_and_conditions(converted, io):
    from lumen_cli.methods.diff_retinex.paper_pipeline import stretch

    tdn = converted[0].nets["tdn"]
    with torch.no_grad():
        for p in ("decom", "decom2"):
            r, l_map = tdn(io[f"{p}.in"])
            close(r, io[f"{p}.R"], f"{p}.R")
            close(l_map, io[f"{p}.L"], f"{p}.L")
    close(stretch(io["decom.R"].clamp(0, 1)), io["cond.rda"], "cond.rda")
    close(stretch(io["decom.L"]), io["cond.ida"], "cond.ida")


@pytest.mark.parametrize("stage", ["rda", "ida"])
def test_schedule_and_single_calls(converted, io, stage):
    net = converted[0].nets[stage]
    s64 = net.schedule64()
    for k in ("betas", "alphas_cumprod", "sqrt_recip_alphas_cumprod", "posterior_mean_coef2"):
        close(getattr(net, k), io[f"{stage}.sched.{k}"], k)
    ref64 = io[f"{stage}.sched.sqrt_alphas_cumprod_prev_f64"].numpy()
    assert np.abs(s64["sqrt_alphas_cumprod_prev"] - ref64).max() < 1e-12
    with torch.no_grad():
        for t in (999, 599, 199):
            u = f"{stage}.denoiser.t{t}."
            gamma = io[u + "noise_level"].reshape(1)
            assert abs(float(gamma) - s64["sqrt_alphas_cumprod_prev"][t + 1]) < 1e-7
            eps = net.denoise_fn(io[u + "denoise_fn_in"], gamma)
            close(eps, io[u + "eps"], u + "eps")
            x_t = io[u + "x_t"]
            x0 = net.sqrt_recip_alphas_cumprod[t] * x_t - net.sqrt_recipm1_alphas_cumprod[t] * eps
            close(x0.clamp(-1, 1), io[u + "x0_denoise"], u + "x0_denoise")
            refined = net.Unet_fn(io[u + "Unet_fn_in"], gamma)
            close(refined, io[u + "Unet_fn_out"], u + "Unet_fn_out")
            close(refined.clamp(-1, 1), io[u + "pred_x0"], u + "pred_x0")


@pytest.mark.parametrize("stage", ["rda", "ida"])
def test_full_sampling_with_recorded_noise(converted, io, stage):
    from lumen_cli.methods.diff_retinex.paper_pipeline import official_ddim, official_timesteps

    u = f"{stage}.ddim."
    assert official_timesteps() == io[u + "t"].tolist()
    noise = iter([io[u + "noise_start"], *io[u + "noise_z"]])
    trace: dict[str, list] = {}
    with torch.no_grad():
        x = official_ddim(
            converted[0].nets[stage], io[f"cond.{stage}"], lambda s: next(noise), trace=trace
        )
    for i in range(5):  # each step's nets on their recorded inputs, and the chained values
        close(trace["eps"][i], io[u + "eps"][i], f"{u}eps[{i}]")
        close(trace["x0_denoise"][i], io[u + "x0_denoise_unclamped"][i], f"{u}x0_d[{i}]")
        close(trace["refined"][i], io[u + "Unet_fn_out"][i], f"{u}Unet_fn_out[{i}]")
    close(torch.cat([io[f"cond.{stage}"], *trace["x"]]), io[u + "SR"], u + "SR")
    close(
        torch.cat([io[f"cond.{stage}"], *trace["x0_denoise"]]).clamp(-1, 1),
        io[u + "x_0"],
        u + "x_0",
    )
    close(x, io[u + "SR"][-1:], u + "SR[-1]")


def test_pipeline_end_to_end_with_recorded_noise(converted, io):
    """analyze + enhance (the path of `lumen enhance`) with the official run's noise draws:
    the uint8 maps and the saved image are equal."""
    from lumen_cli.pipelines.base import EnhanceOptions

    pipe = converted[0]
    x = io["decom.in"]
    opts = EnhanceOptions()
    draws = iter(
        [
            io["rda.ddim.noise_start"],
            *io["rda.ddim.noise_z"],
            io["ida.ddim.noise_start"],
            *io["ida.ddim.noise_z"],
        ]
    )
    with torch.no_grad():
        ctx = pipe.analyze(x, opts, torch.Generator())
        ctx.update(hw=(48, 64), draw=lambda s: next(draws))
        out = pipe.enhance(x, ctx, (0, 0, 48, 64), opts)
        maps = pipe.decompose(x, ctx, (0, 0, 48, 64), EnhanceOptions(extra={"adjusted": True}))
    close(maps["reflectance"], io["decom.R"], "decompose R")
    assert torch.equal(maps["reflectance_adjusted"][0].permute(1, 2, 0) * 255, io["pipeline.G_R"])
    assert torch.equal(maps["illumination_adjusted"][0, 0] * 255, io["pipeline.G_L"])
    assert torch.equal(torch.round(out[0].permute(1, 2, 0) * 255), io["pipeline.I"])


def test_enhance_is_seeded_and_pads(converted):
    """Through the runner: the same --seed gives the same picture, another seed another one
    (eta = 1 sampling); sizes off the multiple of 8 are padded and cropped back."""
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    pipe = converted[0]
    x = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(3)) * 0.3
    a, b = (enhance_image(pipe, x, EnhanceOptions(seed=s)) for s in (0, 0))
    c = enhance_image(pipe, x, EnhanceOptions(seed=1))
    assert a.shape == (1, 3, 45, 61) and torch.equal(a, b) and not torch.equal(a, c)


def test_full_size_keys_shapes_and_counts():
    """Every key of the full-size official checkpoints, with its shape, is a key of lumen's
    paper nets (buffers included) and nothing else; the converter infers the published
    configs from those shapes; parameter counts equal the official ones (58.9 M in all)."""
    from lumen_cli.methods.diff_retinex.convert import diffusion_config
    from lumen_cli.methods.diff_retinex.paper_pipeline import PAPER
    from lumen_cli.methods.diff_retinex.pipeline import DiffRetinexPipeline

    full = json.loads((FIXTURE / "full_shapes.json").read_text())
    nets = DiffRetinexPipeline.build_nets("paper")
    total = 0
    for name, rel in FILES.items():
        entry = full["files"][rel]
        official = {k: tuple(v) for k, v in entry["state_dict"].items()}
        own = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        assert own == official, f"{name}: keys or shapes differ"
        params = sum(p.numel() for p in nets[name].parameters())
        assert params == entry["params"]
        total += params
        if name != "tdn":
            meta = {k: torch.empty(v, device="meta") for k, v in official.items()}
            cfg = diffusion_config(name, meta, None)
            assert json.loads(json.dumps(cfg)) == {"n_timestep": 1000, **PAPER[name][1]}
    assert total == full["params"] == 58_909_632


def test_converter_refuses_other_files(tmp_path):
    from lumen_cli.errors import WeightsError
    from lumen_cli.weights.convert import convert

    bad = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, bad)
    with pytest.raises(WeightsError, match="not a Diff-Retinex"):
        convert("diff-retinex", [bad], tmp_path / "x.safetensors")
    only_tdn = tmp_path / "tdn.safetensors"
    _, res = convert("diff-retinex", [FIXTURE / FILES["tdn"]], only_tdn)
    assert set(res.nets) == {"tdn"} and "missing" in res.notes
    from lumen_cli.errors import UsageError
    from lumen_cli.pipelines.load import load_pipeline
    from lumen_cli.pipelines.run import decompose_image, enhance_image

    pipe = load_pipeline("diff-retinex", weights=only_tdn)
    x = torch.rand(1, 3, 16, 24)
    assert decompose_image(pipe, x)["illumination"].shape == (1, 1, 16, 24)
    with pytest.raises(UsageError, match="lack the rda, ida"):
        enhance_image(pipe, x)


@pytest.mark.parametrize("stage", ["rda", "ida"])
def test_ancestral_posterior_unit(converted, io, stage):
    """The recorded ``p_mean_variance`` at t = 500 (a path the test script does not take):
    posterior mean from the refined x0 with the fixture's quirk that the RDA's refiner there
    sees [cond, x_t] instead of [cond, x0_d]."""
    net, t, u = converted[0].nets[stage], 500, f"{stage}.p_mean_variance.t500."
    x_t, cond = io[u + "x_t"], io[f"cond.{stage}"]
    gamma = torch.tensor([net.schedule64()["sqrt_alphas_cumprod_prev"][t + 1]], dtype=torch.float32)
    with torch.no_grad():
        eps = net.denoise_fn(torch.cat([cond, x_t], 1), gamma)
        x0_d = (
            net.sqrt_recip_alphas_cumprod[t] * x_t - net.sqrt_recipm1_alphas_cumprod[t] * eps
        ).clamp(-1, 1)
        x0 = net.Unet_fn(torch.cat([cond, x_t if stage == "rda" else x0_d], 1), gamma).clamp(-1, 1)
    close(x0_d, io[u + "x_denoise_recon"], u + "x_denoise_recon")
    close(x0, io[u + "x_recon"], u + "x_recon")
    mean = net.posterior_mean_coef1[t] * x0 + net.posterior_mean_coef2[t] * x_t
    close(mean, io[u + "model_mean"], u + "model_mean")
    close(net.posterior_log_variance_clipped[t : t + 1], io[u + "log_variance"], u + "log_variance")
