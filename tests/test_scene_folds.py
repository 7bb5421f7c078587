"""benchmarks/scene_folds.py: scene-disjoint folds of a paired folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from scene_folds import make_folds, scene_of  # noqa: E402


def test_scene_of():
    assert scene_of("s043_0336.jpg") == 43
    assert scene_of("7_1.png") == 7
    with pytest.raises(ValueError):
        scene_of("IMG_0001.jpg")


def test_folds_keep_scenes_together(tmp_path):
    data = tmp_path / "data"
    names = ["s001_0001.jpg", "s001_0002.jpg", "s002_0003.jpg", "s003_0004.jpg", "s010_0005.jpg"]
    for sub in ("low", "high"):
        (data / sub).mkdir(parents=True)
        for n in names:
            (data / sub / n).write_bytes(sub.encode() + n.encode())
    (data / "low" / "s004_0009.jpg").write_bytes(b"no reference")  # unpaired: left out
    counts = make_folds(data, tmp_path / "folds", 2)
    assert counts == {"A": 2, "B": 3}
    a = sorted(p.name for p in (tmp_path / "folds" / "A" / "low").iterdir())
    b = sorted(p.name for p in (tmp_path / "folds" / "B" / "high").iterdir())
    assert a == ["s002_0003.jpg", "s010_0005.jpg"]
    assert b == ["s001_0001.jpg", "s001_0002.jpg", "s003_0004.jpg"]
    assert (
        tmp_path / "folds" / "B" / "high" / "s001_0002.jpg"
    ).read_bytes() == b"highs001_0002.jpg"
    assert make_folds(data, tmp_path / "folds", 2) == counts  # again: links kept, no error
