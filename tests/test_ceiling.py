"""benchmarks/ceiling.py's brightness-predictability helpers on data whose answer is known."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import ceiling  # noqa: E402


def _data(noise_only: bool, n_scenes: int = 30, per_scene: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_scenes * per_scene, 5))
    groups = np.repeat([f"s{i:03d}" for i in range(n_scenes)], per_scene)
    y = rng.normal(size=len(x)) if noise_only else x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    return x, y, groups


def test_scene_cv_finds_a_linear_target():
    x, y, g = _data(noise_only=False)
    pred = ceiling.scene_cv(x, y, g, lam=1e-3)
    assert ceiling.r2(pred, y) > 0.999
    assert ceiling.rmse(pred, y) < 0.05


def test_scene_cv_does_not_predict_noise():
    x, y, g = _data(noise_only=True)
    pred = ceiling.scene_cv(x, y, g, lam=1.0)
    assert ceiling.r2(pred, y) < 0.1  # out of fold: no better than the mean


def test_scene_cv_holds_whole_scenes_out():
    # y is a per-scene value and the features only say which scene a row is from: folds
    # over rows memorise it through the other frames of the scene, folds over scenes cannot
    rng = np.random.default_rng(1)
    n_scenes, per = 40, 4
    g = np.repeat([f"s{i:03d}" for i in range(n_scenes)], per)
    value = rng.normal(size=n_scenes)
    y = np.repeat(value, per)
    x = np.repeat(np.eye(n_scenes), per, 0) + 0.01 * rng.normal(size=(len(y), n_scenes))
    rows = np.array([f"r{i}" for i in range(len(y))])
    assert ceiling.r2(ceiling.scene_cv(x, y, rows, lam=0.1), y) > 0.5
    assert ceiling.r2(ceiling.scene_cv(x, y, g, lam=0.1), y) < 0.1


def test_scene_of():
    assert ceiling.scene_of("s020_0174.jpg") == "s020"
    assert ceiling.scene_of("photo.png") == "photo.png"


def test_low_features_follow_brightness():
    dim = torch.full((1, 3, 32, 32), 0.1)
    bright = torch.full((1, 3, 32, 32), 0.6)
    fd, fb = ceiling.low_features(dim), ceiling.low_features(bright)
    assert len(fd) == len(fb) == 14
    assert fd[0] == pytest.approx(0.1, abs=1e-6) and fb[0] == pytest.approx(0.6, abs=1e-6)
    assert fd[1] == pytest.approx(0.0, abs=1e-9)  # flat image: no spread
    assert fb[-2] == 1.0 and fd[-2] == 0.0  # share of max-RGB above 0.5
