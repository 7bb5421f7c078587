"""The real multi-process path: ``torchrun --nproc_per_node 2 -m lumen_cli train`` on the CPU
(gloo), with a real method's first stage on generated pairs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import save_png

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not installed",
)
def test_torchrun_two_cpu_processes(tmp_path, dim_image):
    from lumen_cli.sample import make_scene

    for sub in ("low", "high"):
        (tmp_path / "d" / sub).mkdir(parents=True)
    for i in range(6):
        save_png(tmp_path / "d" / "high" / f"{i}.png", make_scene(48, 48))
        save_png(tmp_path / "d" / "low" / f"{i}.png", dim_image(48, 48, seed=i))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        torchrun,
        "--standalone",  # a free port of its own: no clash with anything else on the host
        "--nproc_per_node",
        "2",
        "-m",
        "lumen_cli",
        "train",
        "--method",
        "kind",
        "--data",
        str(tmp_path / "d"),
        "--out",
        str(tmp_path / "run"),
        "--stage",
        "decomposition",
        "--set",
        "steps=4",
        "--set",
        "batch_size=2",
        "--set",
        "crop=32",
        "--threads",
        "1",
        "-q",
    ]
    r = subprocess.run(cmd, capture_output=True, env=env, timeout=240)
    err = r.stderr.decode()
    # the ranks' own messages come first, torchrun's summary of the failure last
    assert r.returncode == 0, err[:3000] + "\n...\n" + err[-1500:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["world_size"] == 2
    assert (
        run["stages"]["decomposition"]["complete"] and run["stages"]["decomposition"]["step"] == 4
    )
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log and all(x["stage"] == "decomposition" for x in log)  # rank 0 alone writes
