"""The CLI end to end: real files, a real subprocess for pipes and exit codes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumen_cli.cli.app import main
from tests.conftest import save_png

REPO = Path(__file__).resolve().parents[1]


def run(*args, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMEN_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lumen_cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def folder(tmp_path, dim_image):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    save_png(src / "a.png", dim_image(40, 56, seed=1))
    save_png(src / "sub" / "b.png", dim_image(32, 48, seed=2))
    (src / "notes.txt").write_text("not an image")
    good = (src / "a.png").read_bytes()
    (src / "broken.png").write_bytes(good[: len(good) // 2])
    return src


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys; from lumen_cli.cli.app import main; "
        "rc = main(['--version']); assert 'torch' not in sys.modules, 'torch imported'"
    )
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0, r.stderr.decode()
    assert b"lumen 0." in r.stdout
    assert time.perf_counter() - t < 5  # generous on a loaded CI machine; ~0.4 s here
    r = run("--help")
    assert r.returncode == 0 and b"Exit codes" in r.stdout


def test_batch_with_bad_file_exits_1_and_writes_others(folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["enhance", str(folder), "-r", "-o", str(out), "--json", "-q"])
    assert rc == 1
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {Path(r["input"]).name: r for r in recs}
    assert by["broken.png"]["status"] == "failed" and "truncated" in by["broken.png"]["error"]
    assert by["a.png"]["status"] == "done" and by["b.png"]["status"] == "done"
    assert (out / "a.png").exists() and (out / "sub" / "b.png").exists()  # tree mirrored
    assert not (out / "broken.png").exists() and "notes.txt" not in by
    a = np.asarray(Image.open(out / "a.png"))
    assert a.shape == (40, 56, 3) and a.mean() > np.asarray(Image.open(folder / "a.png")).mean()
    # again: existing outputs are refused without flags, skipped with --skip-existing
    rc = main(["enhance", str(folder / "a.png"), "-o", str(out / "a.png"), "-q"])
    assert rc == 1
    rc = main(["enhance", str(folder), "-r", "-o", str(out), "--json", "-q", "--skip-existing"])
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["status"] for r in recs if "broken" not in r["input"]} == {"skipped"}


def test_non_recursive_folder_and_suffix(folder, tmp_path):
    out = tmp_path / "o"
    assert (
        main(["enhance", str(folder), "-o", str(out), "--suffix", "_x", "--format", "jpeg", "-q"])
        == 1
    )  # broken.png still fails
    assert (out / "a_x.jpg").exists() and not (out / "sub").exists()


def test_input_never_overwritten(folder):
    a = folder / "a.png"
    before = a.read_bytes()
    assert main(["enhance", str(a), "-o", str(a), "-q"]) == 1
    assert a.read_bytes() == before
    assert main(["enhance", str(a), "-o", str(a), "-q", "--overwrite"]) == 0
    assert a.read_bytes() != before


def test_default_output_next_to_input(folder):
    assert main(["enhance", str(folder / "a.png"), "-q"]) == 0
    assert (folder / "a_lumen.png").exists()


def test_pipe_stdin_stdout(folder):
    data = (folder / "a.png").read_bytes()
    r = run("enhance", "-", "-o", "-", stdin=data)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout[:8] == b"\x89PNG\r\n\x1a\n"  # only the image on stdout
    assert b"lumen: method" in r.stderr  # chatter on stderr
    from io import BytesIO

    assert Image.open(BytesIO(r.stdout)).size == (56, 40)


def test_exit_codes_usage_and_device(folder, tmp_path):
    r = run("enhance", str(folder / "a.png"), "--device", "cuda:3")
    assert r.returncode == 2 and b"no CUDA" in r.stderr
    r = run("enhance", str(tmp_path / "missing.png"))
    assert r.returncode == 1 and b"no such file" in r.stderr
    assert main(["enhance", str(folder / "a.png"), "--method", "nope", "-q"]) == 2
    assert main(["enhance", str(folder / "a.png"), "--tile", "big", "-q"]) == 2
    assert main(["enhance", "-", str(folder / "a.png")]) == 2


def test_weights_missing_exit_code(folder, tmp_path):
    bogus = tmp_path / "w.safetensors"
    bogus.write_bytes(b"not a safetensors file")
    assert (
        main(["enhance", str(folder / "a.png"), "--method", "kind", "--weights", str(bogus), "-q"])
        == 3
    )


def test_decompose_writes_maps_and_preview(folder, tmp_path):
    out = tmp_path / "maps"
    assert main(["decompose", str(folder / "a.png"), "-o", str(out), "--preview", "-q"]) == 0
    r = Image.open(out / "a_reflectance.png")
    l_map = Image.open(out / "a_illumination.png")
    p = Image.open(out / "a_preview.png")
    assert r.mode == "RGB" and r.size == (56, 40)
    assert l_map.mode.startswith("I;16") or l_map.mode == "I"  # 16-bit grayscale
    assert p.size == (3 * 56, 40)


def test_methods_and_env(capsys):
    assert main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"retinex", "kind", "diff-retinex"} <= {r["method"] for r in rows}
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"torch", "amx_bf16", "hf_cache", "hf_offline"} <= set(info)


def test_ctrl_c_exits_130_and_leaves_no_partial_file(tmp_path):
    import signal

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        arr = (rng.random((900, 1200, 3)) * 60).astype(np.uint8)
        Image.fromarray(arr).save(src / f"{i}.png")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMEN_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "lumen_cli", "enhance", str(src), "-o", str(out)],
        stderr=subprocess.PIPE,
        env=env,
        # as from a terminal: a suite run in the background (nohup, `&`) starts with SIGINT
        # ignored, which a child would inherit, and then no Ctrl-C could reach it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and any(out.glob("*.png"))):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err.decode()
    written = sorted(out.iterdir())
    assert len(written) < 6  # stopped before the end
    for f in written:  # every file there is a whole image, no temporary left behind
        assert f.suffix == ".png"
        Image.open(f).load()
