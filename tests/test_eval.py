"""``lumen eval``: known PSNR/SSIM of generated pairs; method eval equals re-scoring its outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from lumen_cli.cli.eval_cmd import register
from tests.test_train import TinyNet, make_pairs, tiny  # noqa: F401  (fixture)


def _app():
    app = typer.Typer()

    @app.command()
    def version() -> None:
        typer.echo("0")

    register(app)
    return app


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def test_eval_reproduces_known_psnr_ssim(tmp_path):
    # pair 1: constant 100 vs 110 -> MSE 100, PSNR 28.1308 dB; SSIM = luminance term only
    _save(tmp_path / "gt" / "a.png", np.full((32, 32, 3), 100))
    _save(tmp_path / "pred" / "a.png", np.full((32, 32, 3), 110))
    # pair 2: one level up on every 4th pixel -> MSE 0.25, PSNR 54.1514 dB
    rng = np.random.default_rng(0)
    g = rng.integers(10, 240, size=(32, 32, 3))
    p = g.copy()
    p[::2, ::2] += 1
    _save(tmp_path / "gt" / "b.png", g)
    _save(tmp_path / "pred" / "b.png", p)
    r = CliRunner().invoke(
        _app(), ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    imgs = {d["name"]: d for d in out["images"]}
    assert set(imgs) == {"a.png", "b.png"}
    assert imgs["a.png"]["psnr"] == pytest.approx(10 * math.log10(255**2 / 100), abs=0.01)
    assert imgs["b.png"]["psnr"] == pytest.approx(10 * math.log10(255**2 / 0.25), abs=0.01)
    c1 = (0.01 * 255) ** 2
    assert imgs["a.png"]["ssim"] == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))
    s = out["summary"]
    assert s["n"] == 2
    assert s["psnr_mean"] == pytest.approx((imgs["a.png"]["psnr"] + imgs["b.png"]["psnr"]) / 2)
    assert "unavailable" in s["lpips"] or s["lpips"] == "computed"


def test_eval_matches_skimage_on_random_pair(tmp_path):
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, size=(40, 36, 3)).astype(np.uint8)
    p = np.clip(g * 0.8 + rng.normal(0, 8, g.shape), 0, 255).astype(np.uint8)
    _save(tmp_path / "gt" / "x.png", g)
    _save(tmp_path / "pred" / "x.png", p)
    r = CliRunner().invoke(
        _app(), ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json"]
    )
    d = json.loads(r.output)["images"][0]
    assert d["psnr"] == pytest.approx(skm.peak_signal_noise_ratio(g, p, data_range=255), abs=0.01)
    want = skm.structural_similarity(
        g,
        p,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert d["ssim"] == pytest.approx(want, abs=1e-6)


def test_eval_method_then_rescore_saved_outputs(tiny, tmp_path):  # noqa: F811
    pytest.importorskip("lumen_cli.pipelines.run")
    from lumen_cli.nets.registry import build_net
    from lumen_cli.weights.checkpoint import save_nets

    data = make_pairs(tmp_path / "val", n=3, size=24)
    save_nets(tmp_path / "tiny.safetensors", "tiny", {"net": build_net("test.tiny", {"width": 4})})
    args = [
        "eval",
        "--method",
        "tiny",
        "--data",
        str(data),
        "--weights",
        str(tmp_path / "tiny.safetensors"),
        "--save-dir",
        str(tmp_path / "out"),
        "--json",
        "--precision",
        "fp32",
        "--limit",
        "2",
    ]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)
    assert a["summary"]["n"] == 2 and a["summary"]["seconds_mean"] > 0
    r = CliRunner().invoke(
        _app(), ["eval", "--pred", str(tmp_path / "out"), "--gt", str(data / "high"), "--json"]
    )
    b = json.loads(r.output)
    for x, y in zip(a["images"], b["images"], strict=True):
        assert x["psnr"] == pytest.approx(y["psnr"], abs=1e-9)
        assert x["ssim"] == pytest.approx(y["ssim"], abs=1e-12)


def test_eval_usage_errors(tmp_path):
    r = CliRunner().invoke(_app(), ["eval", "--pred", str(tmp_path)])
    assert r.exit_code == 2 and "--gt" in r.output
    make_pairs(tmp_path / "d", n=1)
    r = CliRunner().invoke(_app(), ["eval", "--method", "nope", "--data", str(tmp_path / "d")])
    assert r.exit_code == 2 and "unknown method" in r.output
