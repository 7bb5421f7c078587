"""Training data, settings, LR schedule and low-light synthesis."""

from __future__ import annotations

import numpy as np
import pytest

from lumen_cli.ops.color import linear_to_srgb, srgb_to_linear
from lumen_cli.train import config as C
from lumen_cli.train.data import (
    Augment,
    PairedDataset,
    StreamSampler,
    paired_files,
    pos_to_index,
)
from lumen_cli.train.loop import lr_factor
from lumen_cli.train.stage import Stage
from lumen_cli.train.synth import synthesize_low
from tests.test_train import make_pairs


def test_paired_files_match_by_name(tmp_path):
    make_pairs(tmp_path, n=3)
    (tmp_path / "low" / "extra.png").write_bytes((tmp_path / "low" / "000.png").read_bytes())
    pairs = paired_files(tmp_path)
    assert [(a.name, b.name) for a, b in pairs] == [(f"{i:03d}.png",) * 2 for i in range(3)]
    with pytest.raises(FileNotFoundError, match="low/ and high/"):
        paired_files(tmp_path / "low")


def test_dataset_deterministic_by_position_and_aligned(tmp_path):
    make_pairs(tmp_path, n=4, size=24)
    ds = PairedDataset(paired_files(tmp_path), Augment(crop=16), seed=3)
    a, b = ds[5], ds[5]
    assert a["low"].shape == (3, 16, 16)
    assert (a["low"] == b["low"]).all() and (a["high"] == b["high"]).all()
    # the pair stays aligned through crop/flip/rot: low was made as 0.3 * high
    assert np.allclose(a["low"].numpy(), 0.3 * a["high"].numpy(), atol=1 / 255 + 1e-6)
    # each epoch visits every item once
    assert sorted(pos_to_index(p, 4, 3) for p in range(4, 8)) == [0, 1, 2, 3]


def test_stream_sampler_ranks_are_disjoint_and_resumable():
    def take(s, n):
        it = iter(s)
        return [next(it) for _ in range(n)]

    r0, r1 = take(StreamSampler(2, 0, 0, 2), 6), take(StreamSampler(2, 0, 1, 2), 6)
    assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(12))
    assert take(StreamSampler(2, 1, 0, 2), 4) == r0[2:6]  # starting at step 1 = skipping 1 batch


def test_settings_resolution_order():
    stages = [
        Stage("a", trains=("n",), loss=None, defaults={"lr": 1e-3, "w_smooth": 0.1}),
        Stage("b", trains=("n",), loss=None, defaults={"steps": 7}),
    ]
    file_cfg = {"lr": 5e-4, "b": {"lr": 2e-4}, "nets": {"n": {"width": 4}}, "preset": "paper"}
    sets = C.parse_sets(["b.lr=1e-5", "w_smooth=0.5", "nets.n.depth=2", "crop=none"])
    run, per, nets = C.resolve(stages, C.load_file(None) | file_cfg, {})
    assert run == {"preset": "paper"} and per["a"]["lr"] == 5e-4 and per["b"]["lr"] == 2e-4
    run, per, nets = C.resolve(stages, file_cfg, sets)
    assert per["a"]["lr"] == 5e-4 and per["b"]["lr"] == 1e-5
    assert per["a"]["w_smooth"] == 0.5 and "w_smooth" not in per["b"]
    assert per["b"]["steps"] == 7 and per["a"]["crop"] is None
    assert nets == {"n": {"width": 4, "depth": 2}}
    with pytest.raises(ValueError, match="unknown"):
        C.resolve(stages, {}, C.parse_sets(["a.steps_typo=3"]))


def test_parse_duration():
    assert C.parse_duration("90m") == 5400
    assert C.parse_duration("1h30m") == 5400
    assert C.parse_duration("45s") == 45 and C.parse_duration("600") == 600
    with pytest.raises(ValueError):
        C.parse_duration("soon")


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, 10, 100, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))
    assert f[-1] == pytest.approx(0.01, abs=2e-3)


def test_srgb_roundtrip():
    x = np.linspace(0, 1, 101)
    assert np.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)


def test_synthesized_low_light_is_dark_noisy_and_seeded():
    hi = np.full((64, 64, 3), 150, np.uint8)
    lo = synthesize_low(hi, np.random.default_rng(1))
    assert lo.dtype == np.uint8 and lo.shape == hi.shape
    assert lo.mean() < 0.6 * hi.mean()  # darker (exposure at most 1/4 in linear light)
    assert lo.std() > 0.5  # flat input gets noise
    assert (synthesize_low(hi, np.random.default_rng(1)) == lo).all()
    # brighter source -> brighter result on average over random draws (signal preserved)
    dark = np.mean([synthesize_low(hi // 3, np.random.default_rng(s)).mean() for s in range(8)])
    bright = np.mean([synthesize_low(hi, np.random.default_rng(s)).mean() for s in range(8)])
    assert bright > dark


def test_synthesis_mix_in_dataset(tmp_path):
    make_pairs(tmp_path, n=3, size=24)
    ds = PairedDataset(
        paired_files(tmp_path), Augment(crop=None), seed=0, synth=synthesize_low, synth_ratio=1.0
    )
    s = ds[0]
    # the low image is no longer the 0.3x copy of high but a synthesized one
    assert not np.allclose(s["low"].numpy(), 0.3 * s["high"].numpy(), atol=1 / 255 + 1e-6)


def test_unpaired_flat_folder_split_by_brightness(tmp_path):
    from PIL import Image

    from lumen_cli.train.data import UnpairedDataset, unpaired_files

    for i, v in enumerate([20, 30, 120, 250]):  # two dark, one normal, one blown out
        Image.fromarray(np.full((20, 20, 3), v, np.uint8)).save(tmp_path / f"{i}.png")
    lows, normals = unpaired_files(tmp_path)
    assert [p.name for p in lows] == ["0.png", "1.png"] and [p.name for p in normals] == ["2.png"]
    ds = UnpairedDataset(lows, normals, Augment(crop=16), seed=0)
    s = ds[3]
    assert s["low"].shape == s["normal"].shape == (3, 16, 16)
    assert s["low"].max() < 0.15 and abs(float(s["normal"].mean()) - 120 / 255) < 1e-6


def test_jpeg_roundtrip_gives_8bit_values_near_the_input():
    import torch

    from lumen_cli.train.synth import jpeg_roundtrip

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 48) * 0.1 + torch.linspace(0, 0.5, 48)
    y = jpeg_roundtrip(x, (90, 90))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.equal(y, (y * 255).round() / 255)
    assert 0 < float((y - x).abs().mean()) < 0.03
