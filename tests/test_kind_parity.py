"""KinD / KinD++ ``paper`` presets against the official code (../shared/parity/kind).

Through ``lumen weights convert kind``: the authors' real decomposition and adjustment
checkpoints (TF bundles, byte copies of the official repositories' ``checkpoint/`` folders),
stand-in restoration weights written as TF bundles from the fixture's seeded recipe, and the
PyTorch port's ``.pth`` files. Every output must match the official TensorFlow run within
1e-4 · max(1, max|ref|) (fp32); the full-size official key lists must map one to one.
Skipped without the fixture.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lumen_cli.errors import WeightsError
from lumen_cli.methods.kind import convert as kc
from lumen_cli.methods.kind.pipeline import KinDPipeline
from lumen_cli.pipelines.base import EnhanceOptions
from lumen_cli.pipelines.load import load_pipeline
from lumen_cli.pipelines.run import decompose_image, enhance_image
from lumen_cli.weights.convert import convert
from tests.parity import close
from tests.test_tf_bundle import write_bundle

FIX = Path(__file__).resolve().parents[1] / ".." / "shared" / "parity" / "kind"
pytestmark = pytest.mark.skipif(
    not FIX.is_dir(), reason="parity fixture ../shared/parity/kind absent"
)
KIND = {"decom": "tf/decom_net_train", "adjust": "tf/illumination_adjust_net_train"}
PLUS = {"decom": "tf_kindpp/decom_model", "adjust": "tf_kindpp/illu_model"}
SIZES = {"kind": ("64x64", "63x65"), "plus": ("64x64", "60x64")}


def record(mods: dict) -> tuple[dict, list]:
    """Forward hooks storing each module's output under its key: (outputs, hook handles)."""
    seen: dict[str, torch.Tensor] = {}

    def hook(key):
        return lambda m, i, o: seen.__setitem__(key, o)

    return seen, [m.register_forward_hook(hook(k)) for k, m in mods.items()]


@pytest.fixture(scope="module")
def io():
    from safetensors.torch import load_file

    return {
        "kind": load_file(FIX / "io.safetensors"),
        "plus": load_file(FIX / "io_kindpp.safetensors"),
    }


def seeded_restoration(tmp: Path, model: str) -> Path:
    """The fixture's stand-in restoration weights (seeded_restoration.json), written as the TF
    checkpoint folder the official evaluate.py would restore; checksums verified."""
    spec = json.loads((FIX / "seeded_restoration.json").read_text())[model]
    tensors = {}
    for name, info in spec.items():
        z = np.random.RandomState(zlib.crc32(name.encode())).standard_normal(info["shape"])
        leaf = name.rsplit("/", 1)[-1]
        if leaf in ("weights", "kernel"):
            v = z * np.sqrt(2 / np.prod(info["shape"][:-1]))
        elif leaf in ("biases", "beta"):
            v = 0.05 * z
        elif leaf == "gamma":
            v = 1 + 0.1 * z
        elif leaf == "moving_mean":
            v = 0.1 * z
        else:
            assert leaf == "moving_variance", name
            v = np.exp(0.2 * z)
        v = v.astype(np.float32)
        np.testing.assert_allclose(v.astype(np.float64).sum(), info["sum"], rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(v.reshape(-1)[:4], np.float32(info["first4"]))
        tensors[name] = v
    folder = tmp / ("Restoration_net_train" if model == "kind" else "restoration_model")
    write_bundle(folder / "model.ckpt", tensors)
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """{'kind' | 'plus': path of the converted file with all three nets}."""
    tmp = tmp_path_factory.mktemp("kind_parity")
    out = {}
    for model, dirs in (("kind", KIND), ("plus", PLUS)):
        srcs = [FIX / d for d in dirs.values()] + [
            seeded_restoration(tmp, model if model == "kind" else "kindpp")
        ]
        out[model] = tmp / f"{model}.safetensors"
        convert("kind", srcs, out[model])
    return out


# -- key maps at full size ------------------------------------------------------------------
@pytest.mark.parametrize("model", ["kind", "kindpp"])
def test_full_size_keys_map_one_to_one(model):
    shapes = json.loads((FIX / "full_shapes.json").read_text())[model]
    tensors, counts = {}, {}
    for entry in shapes["files"].values():
        for k, s in entry["state_dict"].items():
            tensors[k] = np.zeros(s, np.float32)
        net = kc.SCOPES[next(iter(entry["state_dict"])).split("/")[0]][0]
        counts[net] = entry["params"]
    res = kc.convert_official(tensors)
    assert res.preset == ("paper" if model == "kind" else "paper-plus")
    assert set(res.nets) == {"decom", "restore", "adjust"} and "missing" not in res.notes
    for net, module in res.nets.items():
        stored = {k: v for k, v in module.state_dict().items() if "num_batches" not in k}
        keys = kc.official_keys(net, model == "kindpp")
        assert sorted(keys.values()) == sorted(stored), net  # every lumen tensor, once
        assert sum(v.numel() for v in stored.values()) == counts[net], net
    fresh = KinDPipeline.build_nets(res.preset)
    total = sum(
        v.numel()
        for m in fresh.values()
        for k, v in m.state_dict().items()
        if "num_batches" not in k
    )
    assert total == shapes["params_total_all_files"]


# -- real weights ---------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["kind", "plus"])
def test_real_decomposition_and_adjustment(model, io, tmp_path):
    dirs = KIND if model == "kind" else PLUS
    out = tmp_path / "real.safetensors"
    _, res = convert("kind", [FIX / d for d in dirs.values()], out)
    assert set(res.nets) == {"decom", "adjust"} and "restoration net" in res.notes["missing"]
    from lumen_cli.weights.checkpoint import read_metadata

    meta = read_metadata(out)
    assert meta["lumen.preset"] == ("paper" if model == "kind" else "paper-plus")
    paths = [f["path"] for f in json.loads(meta["lumen.provenance"])["converted_from"]]
    assert f"{Path(dirs['decom']).name}/model.ckpt.index" in paths  # same-named files told apart
    pipe = load_pipeline("kind", out)
    d = io[model]
    for s in SIZES[model]:
        x = d[f"decom.{s}.in"]
        r, l = pipe.nets["decom"](x)
        close(r, d[f"decom.{s}.R"], f"{s} R")
        close(l, d[f"decom.{s}.L"], f"{s} L")
        for ratio in (5, 2, 1):
            got = pipe.nets["adjust"](d[f"adjust.{s}.ratio{ratio}.L_in"], float(ratio))
            close(got, d[f"adjust.{s}.ratio{ratio}.out"], f"{s} adjust ratio {ratio}")
        got = pipe.nets["adjust"](d[f"adjust_syn.{s}.ratio5.L_in"], 5.0)
        close(got, d[f"adjust_syn.{s}.ratio5.out"], f"{s} adjust synthetic L")
        # the pipeline's decompose: the loader's min-max stretch, then the net, untiled
        maps = decompose_image(pipe, d[f"input.{s}.raw_uint8"] / 255, tile=None, precision="fp32")
        close(maps["reflectance"], d[f"decom.{s}.R"], f"{s} decompose R")
        close(maps["illumination"], d[f"decom.{s}.L"], f"{s} decompose L")
        # without a restoration net, enhance names what is missing
        with pytest.raises(WeightsError, match="restoration net"):
            enhance_image(pipe, d[f"input.{s}.raw_uint8"] / 255, tile=None, precision="fp32")


def test_decom_intermediates(io, tmp_path):
    """Activations inside DecomNet (first 8 channels), incl. the odd-size transposed convs."""
    out = tmp_path / "decom.safetensors"
    convert("kind", [FIX / KIND["decom"]], out)
    net = load_pipeline("kind", out).nets["decom"]
    act = torch.nn.functional.leaky_relu
    d = io["kind"]
    for s in SIZES["kind"]:
        mods = {n: getattr(net, n) for n in ("conv1", "conv3", "conv4", "conv5", "l_conv")}
        mods |= {n: getattr(net, n) for n in ("r_out", "l_out")}
        mods |= {n: getattr(net, n).deconv for n in ("up1", "up2")}
        seen, hooks = record(mods)
        net(d[f"decom.{s}.in"])
        for h in hooks:
            h.remove()
        ref = {k.split(".inter.")[1]: v for k, v in d.items() if k.startswith(f"decom.{s}.inter.")}
        close(act(seen["conv1"], 0.2)[:, :8], ref["conv1"], "conv1")
        close(act(seen["conv3"], 0.2)[:, :8], ref["conv3"], "conv3")
        close(act(seen["conv4"], 0.2)[:, :8], ref["conv8"], "conv8")
        close(act(seen["conv5"], 0.2)[:, :8], ref["conv9"], "conv9")
        close(act(seen["l_conv"], 0.2)[:, :8], ref["l_conv2"], "l_conv2")
        h1, w1 = ref["up1"].shape[-2:]
        close(seen["up1"][:, :8, :h1, :w1], ref["up1"], "up1")
        h2, w2 = ref["up2"].shape[-2:]
        close(seen["up2"][:, :8, :h2, :w2], ref["up2"], "up2")
        close(seen["r_out"], ref["R_logits"], "R logits")
        close(seen["l_out"], ref["L_logits"], "L logits")


# -- seeded restoration nets and the whole evaluate.py recipe ------------------------------
@pytest.mark.parametrize("model", ["kind", "plus"])
def test_restoration_units(model, io, converted):
    pipe = load_pipeline("kind", converted[model])
    net, d = pipe.nets["restore"], io[model]
    for s in SIZES[model]:
        mods = {"logits": net.out}
        if model == "kind":
            mods |= {
                "up6": net.ups[0].deconv,
                "conv6": net.up_blocks[0][1],
                "conv9": net.up_blocks[3][1],
            }
            mods |= {"up9": net.ups[3].deconv}
        else:
            m1 = net.msia[0]
            mods |= {"att1": m1.att, "msia1.pu1": m1.pu1, "msia1.pu2": m1.pu2, "msia1.pu4": m1.pu4}
            mods |= {"msia1.out": m1, "msia3.out": net.msia[2], "conv5": net.tail}
        seen, hooks = record(mods)
        got = net(d[f"restore.{s}.R_in"], d[f"restore.{s}.L_in"])
        for h in hooks:
            h.remove()
        close(got, d[f"restore.{s}.out"], f"{model} {s} restore out")
        post = {"conv6": 0.2, "conv9": 0.2, "conv5": 0.2}
        for k, t in seen.items():
            ref = d[f"restore.{s}.inter.{k}"]
            if k in post:
                t = torch.nn.functional.leaky_relu(t, post[k])
            if k == "att1":
                t = torch.sigmoid(t)
            close(t[:, : ref.shape[1], : ref.shape[2], : ref.shape[3]], ref, f"{model} {s} {k}")


@pytest.mark.parametrize("model", ["kind", "plus"])
def test_evaluate_recipe_end_to_end(model, io, converted):
    """raw 8-bit image -> lumen enhance (official recipe) == evaluate.py's saved image."""
    pipe = load_pipeline("kind", converted[model])
    assert pipe.official and pipe.plus == (model == "plus")
    d = io[model]
    for s in SIZES[model]:
        x = d[f"input.{s}.raw_uint8"] / 255
        variants = {
            "final_adjusted": {"adjustment": True},
            "final_not_adjusted": {"adjustment": False},
        }
        for key, extra in variants.items():
            raw = enhance_image(
                pipe,
                x,
                EnhanceOptions(extra=extra | {"truncate": False}),
                tile=None,
                precision="fp32",
            )
            close(raw, d[f"post.{s}.{key}"], f"{model} {s} {key}")
            saved = enhance_image(pipe, x, EnhanceOptions(extra=extra), tile=None, precision="fp32")
            diff = (torch.round(saved * 255) - d[f"post.{s}.{key}_uint8"]).abs()
            assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, f"{model} {s} {key} uint8"
        default = enhance_image(
            pipe, x, EnhanceOptions(extra={"truncate": False}), tile=None, precision="fp32"
        )
        key = "final_adjusted" if model == "kind" else "final_not_adjusted"  # KinD++ default
        close(default, d[f"post.{s}.{key}"], f"{model} {s} default")


def test_user_ratio(io, converted):
    """--exposure scales the official ratio 5.0 (by exposure^(1/2.2), as for the lite
    preset); opts.extra['ratio'] sets it."""
    pipe = load_pipeline("kind", converted["kind"])
    x = io["kind"]["input.64x64.raw_uint8"] / 255
    ctx = pipe.analyze(x, EnhanceOptions(exposure=0.5), torch.Generator())
    assert float(ctx["alpha"]) == pytest.approx(5.0 * 0.5 ** (1 / 2.2))
    ctx = pipe.analyze(x, EnhanceOptions(extra={"ratio": 1.0}), torch.Generator())
    assert float(ctx["alpha"]) == pytest.approx(1.0)


# -- the PyTorch port -----------------------------------------------------------------------
def test_port_weights(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "port.safetensors"
    _, res = convert("kind", [FIX / "port" / "decom_net.pth", FIX / "port" / "illum_net.pth"], out)
    assert res.preset == "port" and "restore" in res.notes["missing"]
    pipe = load_pipeline("kind", out)
    d = load_file(FIX / "port" / "io_port.safetensors")
    for s in ("64x64", "63x65"):
        r, l = pipe.nets["decom"](d[f"port.{s}.decom.in"])
        close(r, d[f"port.{s}.decom.R"], f"port {s} R")
        close(l, d[f"port.{s}.decom.L"], f"port {s} L")
        for ratio in (5, 2):
            got = pipe.nets["adjust"](d[f"port.{s}.illum.ratio{ratio}.L_in"], float(ratio))
            close(got, d[f"port.{s}.illum.ratio{ratio}.out"], f"port {s} ratio {ratio}")


# -- a checkout of the official repository --------------------------------------------------
def test_official_checkout(io, tmp_path):
    """``lumen weights convert kind KinD/checkpoint``: with LUMEN_KIND_REPO pointing to a clone
    of zhangyhuaee/KinD, its whole checkpoint folder converts and reproduces the reference."""
    repo = os.environ.get("LUMEN_KIND_REPO")
    if not repo or not (Path(repo) / "checkpoint").is_dir():
        pytest.skip("set LUMEN_KIND_REPO to a checkout of github.com/zhangyhuaee/KinD")
    out = tmp_path / "kind-official.safetensors"
    _, res = convert("kind", [Path(repo) / "checkpoint"], out)
    assert set(res.nets) == {"decom", "adjust"}
    pipe = load_pipeline("kind", out)
    d = io["kind"]
    maps = decompose_image(pipe, d["input.63x65.raw_uint8"] / 255, tile=None, precision="fp32")
    close(maps["reflectance"], d["decom.63x65.R"], "checkout R")
    close(maps["illumination"], d["decom.63x65.L"], "checkout L")
