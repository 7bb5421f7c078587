"""Reliability fixes of issue 28, end to end where the behaviour is: no lost files, no
tracebacks, usage errors exit 2, signals clean up, stale temporaries swept, clear messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumen_cli import atomic
from tests.conftest import save_png

REPO = Path(__file__).resolve().parents[1]


def lumen(*args, stdin=b"", cwd=None, patch: str = "", env=None, timeout=300):
    """Run the CLI in a subprocess; ``patch`` is Python run first (to simulate faults)."""
    code = textwrap.dedent(patch) + "\nimport sys\nfrom lumen_cli.cli.app import main\n"
    code += "sys.exit(main(sys.argv[1:]))\n"
    e = {**os.environ, "PYTHONPATH": str(REPO), "LUMEN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    e.pop("LUMEN_DEBUG", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        input=stdin,
        capture_output=True,
        env=e,
        cwd=cwd,
        timeout=timeout,
    )


def err_of(r) -> str:
    text = r.stderr.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    return text


@pytest.fixture
def img(tmp_path, dim_image):
    return save_png(tmp_path / "a.png", dim_image(24, 32, seed=1))


# -- 1. data loss: an output that appears during the run is never replaced -------------------

APPEAR = """
import os
from lumen_cli.pipelines.registry import METHODS
cls = METHODS["retinex"].load_class()
_orig = cls.enhance
def enhance(self, *a, **k):  # the output appears after lumen checked it, before it writes
    for p in os.environ["LUMEN_TEST_APPEAR"].split(os.pathsep):
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write("precious")
    return _orig(self, *a, **k)
cls.enhance = enhance
"""


@pytest.mark.parametrize(
    "flag, rc, kept", [(None, 1, True), ("--skip-existing", 0, True), ("--overwrite", 0, False)]
)
def test_output_appearing_during_the_run_is_never_replaced(tmp_path, img, flag, rc, kept):
    out = tmp_path / "out.png"
    args = ["enhance", img, "-o", out] + ([flag] if flag else [])
    r = lumen(*args, patch=APPEAR, env={"LUMEN_TEST_APPEAR": str(out)})
    err = err_of(r)
    assert r.returncode == rc, err
    assert (out.read_bytes() == b"precious") == kept
    if flag is None:
        assert "already exists" in err
    assert not [f for f in tmp_path.iterdir() if atomic.is_temporary(f.name)]


def test_atomic_publish_refuses_a_name_taken_meanwhile(tmp_path):
    dest = tmp_path / "x.png"
    dest.write_text("precious")
    with pytest.raises(atomic.DestinationExistsError):
        atomic.write_bytes(dest, b"new", overwrite=False)
    assert dest.read_text() == "precious" and os.listdir(tmp_path) == ["x.png"]
    atomic.write_bytes(dest, b"new", overwrite=True)
    assert dest.read_bytes() == b"new" and os.listdir(tmp_path) == ["x.png"]


# -- 2. two inputs mapping to one output -----------------------------------------------------


@pytest.mark.parametrize("flag", [[], ["--overwrite"]])
def test_same_named_inputs_are_mirrored_not_lost(tmp_path, dim_image, flag):
    for i, d in enumerate(["c1", "c2"]):
        (tmp_path / d).mkdir()
        save_png(tmp_path / d / "x.png", dim_image(24, 32, seed=i))
    r = lumen("enhance", "c1/x.png", "c2/x.png", "-o", "oc/", *flag, cwd=tmp_path)
    err = err_of(r)
    assert r.returncode == 0 and "done 2, skipped 0, failed 0" in err, err
    a, b = tmp_path / "oc/c1/x.png", tmp_path / "oc/c2/x.png"
    assert a.exists() and b.exists() and a.read_bytes() != b.read_bytes()


def test_outputs_that_would_collide_fail_one_never_both_done(tmp_path, dim_image):
    src = tmp_path / "in"
    src.mkdir()
    save_png(src / "x.png", dim_image(24, 32, seed=1))
    Image.fromarray((dim_image(24, 32, seed=2) * 255).astype(np.uint8)).save(src / "x.jpg")
    r = lumen("enhance", src, "-o", tmp_path / "o", "--format", "png", "--overwrite")
    err = err_of(r)
    assert r.returncode == 1 and "done 1, skipped 0, failed 1" in err, err
    assert "also the output of" in err and sorted(os.listdir(tmp_path / "o")) == ["x.png"]
    r = lumen("decompose", src, "-o", tmp_path / "maps")
    err = err_of(r)
    assert r.returncode == 1 and "also the output of" in err, err


# -- 3./4. EXIF-rotated input through the tone net; tiny images; per-file isolation -------


def test_tone_curves_accept_a_transposed_view():
    import torch

    from lumen_cli.nets.tone import apply_curves

    x = torch.rand(1, 24, 40, 3).permute(0, 3, 2, 1)  # (1,3,40,24), as an EXIF-rotated read
    curves = torch.rand(1, 3, 25).cumsum(-1)
    assert torch.equal(apply_curves(x, curves), apply_curves(x.contiguous(), curves))


def test_portrait_phone_jpeg_with_tone_net(tmp_path):
    ex = Image.Exif()
    ex[0x0112] = 6
    arr = (np.random.default_rng(0).random((24, 40, 3)) * 70).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "p.jpg", exif=ex.tobytes())
    r = lumen("enhance", "-m", "kind", tmp_path / "p.jpg", "-o", tmp_path / "o.png")
    err = err_of(r)
    if r.returncode in (2, 3) and "weights" in err:
        pytest.skip("kind weights not available")
    assert r.returncode == 0, err
    assert Image.open(tmp_path / "o.png").size == (24, 40)


def test_tiny_images_every_size(tmp_path):
    sizes = [(1, 1), (2, 2), (1, 50), (50, 1)]
    for h, w in sizes:
        save_png(tmp_path / f"t{h}x{w}.png", np.full((h, w, 3), 0.2, np.float32))
    r = lumen("enhance", tmp_path, "-o", tmp_path / "o")
    assert r.returncode == 0, err_of(r)
    for h, w in sizes:
        assert Image.open(tmp_path / "o" / f"t{h}x{w}.png").size == (w, h)
    r = lumen("decompose", tmp_path, "-o", tmp_path / "m")
    assert r.returncode == 0, err_of(r)


def test_runner_gives_methods_room_on_tiny_images():
    import torch

    from lumen_cli.pipelines.base import EnhanceOptions, Pipeline
    from lumen_cli.pipelines.run import MIN_SIDE, enhance_image

    class NeedsRoom(Pipeline):  # like a deep U-Net: fails below MIN_SIDE, else the identity
        def analyze(self, x, opts, generator):
            assert min(x.shape[-2:]) >= MIN_SIDE
            return {"mean": x.mean()}

        def enhance(self, x, ctx, region, opts):
            assert min(x.shape[-2:]) >= MIN_SIDE
            return x

    for hw in [(1, 1), (2, 2), (1, 50), (50, 1), (24, 33)]:
        x = torch.rand(1, 3, *hw)
        y = enhance_image(NeedsRoom(), x, EnhanceOptions(), tile=None)
        assert y.shape == x.shape and torch.allclose(y, x, atol=1e-6)


CRASH = """
from lumen_cli.pipelines.registry import METHODS
cls = METHODS["retinex"].load_class()
_orig = cls.analyze
def analyze(self, x, *a, **k):
    if x.shape[-1] == 65:
        raise ZeroDivisionError("simulated bug")
    return _orig(self, x, *a, **k)
cls.analyze = analyze
"""


def test_any_exception_of_one_file_is_isolated(tmp_path, dim_image):
    for name, w in [("a.png", 64), ("b.png", 65), ("c.png", 64)]:
        save_png(tmp_path / name, dim_image(24, w, seed=w))
    r = lumen("enhance", tmp_path, "-o", tmp_path / "o", patch=CRASH)
    err = err_of(r)
    assert r.returncode == 1, err
    assert "b.png: unexpected ZeroDivisionError: simulated bug" in err
    assert "done 2, skipped 0, failed 1" in err
    assert sorted(os.listdir(tmp_path / "o")) == ["a.png", "c.png"]


# -- 5./6./9. usage errors: a message and exit 2, with the oldest and newest typer allowed ---

USAGE = [
    (["--steps", "0"], "--steps"),
    (["--steps", "abc"], "--steps"),
    (["--exposure", "0"], "--exposure"),
    (["--exposure", "-1"], "--exposure"),
    (["--exposure", "nan"], "from 0.05 to 8"),
    (["--exposure", "inf"], "from 0.05 to 8"),
    (["--quality", "0"], "--quality"),
    (["--no-such-option"], "no-such-option"),
    (["--max-pixels", "-1"], "positive number of pixels"),
    (["--suffix", "/../../escaped", "-o", "outdir/"], "separators"),
    (["--suffix", "/../x"], "separators"),
    (["--threads", "-2"], "--threads"),
]


USAGE_DRIVER = """
import contextlib, io, json, sys, traceback
from lumen_cli.cli.app import main
img, out = sys.argv[1], []
for extra, _ in {cases!r}:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        try:
            rc = main(["enhance", img, *extra])
        except BaseException:
            traceback.print_exc(file=buf)
            rc = None
    out.append((rc, buf.getvalue()))
print(json.dumps(out))
sys.exit(0)
"""


def _typer_sites():
    sites = [None]
    old = os.environ.get("LUMEN_OLD_TYPER_SITE")  # typer 0.19.0 + click 8.1: the oldest allowed
    sites.append(old if old and Path(old).is_dir() else "missing")
    return sites


@pytest.mark.parametrize("site", _typer_sites(), ids=["installed-typer", "oldest-typer"])
def test_usage_errors_are_messages_with_exit_2(tmp_path, img, site):
    if site == "missing":
        pytest.skip("set LUMEN_OLD_TYPER_SITE to a --target install of typer==0.19.0 click==8.1.*")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [site, str(REPO)]))}
    # one interpreter runs main() on every case (what the console script does, minus the
    # start-up); the first case and the special ones below run as real processes
    r = lumen("enhance", img, *USAGE[0][0], cwd=tmp_path, env=env)
    assert r.returncode == 2 and USAGE[0][1] in err_of(r)
    r = lumen(img, cwd=tmp_path, env=env, patch=USAGE_DRIVER.format(cases=USAGE))
    assert r.returncode == 0, err_of(r)
    bad = []
    for (extra, needle), (rc, err) in zip(USAGE, json.loads(r.stdout)):
        if rc != 2 or "Traceback" in err or needle not in err:
            bad.append((extra, rc, err[-400:]))
        if "nan" in extra:
            assert "less than or equal" not in err
        if "-1" in extra and "--max-pixels" in extra:
            assert "-0.0" not in err
    assert not bad, bad
    assert not (tmp_path.parent / "escaped").exists() and not list(tmp_path.glob("*escaped*"))
    save_png(tmp_path / "-dash.png", np.full((4, 4, 3), 0.2, np.float32))
    r = lumen("enhance", "-dash.png", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "--" in err_of(r) and "hint" in err_of(r)
    r = lumen("enhance", "--", "-dash.png", cwd=tmp_path, env=env)
    assert r.returncode == 0, err_of(r)
    r = lumen("enhance", "-", "-o", tmp_path / "o.png", stdin=b"", env=env)
    assert r.returncode == 2 and "stdin is empty" in err_of(r)


# -- 7. non-finite weights and outputs ---------------------------------------------------------


def test_weights_with_nan_are_refused_at_load(tmp_path, img):
    import torch

    from lumen_cli.pipelines.registry import METHODS
    from lumen_cli.weights.checkpoint import save_nets

    cls = METHODS["kind"].load_class()
    nets = cls.build_nets()
    with torch.no_grad():
        next(iter(nets.values())).parameters().__next__().fill_(float("nan"))
    w = tmp_path / "nan.safetensors"
    save_nets(w, "kind", nets)
    r = lumen("enhance", img, "-m", "kind", "--weights", w, "-o", tmp_path / "o.png")
    err = err_of(r)
    assert r.returncode == 3 and "NaN" in err, err
    assert not (tmp_path / "o.png").exists()


NAN_OUT = """
import torch
from lumen_cli.pipelines.registry import METHODS
cls = METHODS["retinex"].load_class()
cls.enhance = lambda self, x, ctx, region, opts: torch.full_like(x, float("nan"))
"""


def test_non_finite_result_is_an_error_for_the_file(tmp_path, img):
    r = lumen("enhance", img, "-o", tmp_path / "o.png", patch=NAN_OUT)
    err = err_of(r)
    assert r.returncode == 1 and "NaN" in err and str(img) in err, err
    assert not (tmp_path / "o.png").exists()


# -- 8. signals and stale temporaries ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly_and_says_interrupted(tmp_path, sig, rc):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray((rng.random((600, 800, 3)) * 60).astype(np.uint8)).save(src / f"{i}.png")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMEN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "lumen_cli", "enhance", str(src), "-o", str(out)],
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and any(out.glob("*.png"))):
        time.sleep(0.02)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    text = err.decode()
    assert p.returncode == rc, text
    assert "interrupted" in text and "Traceback" not in text
    for f in out.iterdir():
        assert not atomic.is_temporary(f.name)
        Image.open(f).load()


def test_sweep_removes_only_temporaries_of_dead_writers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {
        f".a.png.{dead.pid}-0123abcd.tmp": False,  # writer gone: removed
        f".b.png.{os.getpid()}-0123abcd.tmp": True,  # writer alive (this test): kept
        ".c.png.89abcdef.tmp": True,  # older lumen's name, recent: kept
        ".d.png.89abcdef.tmp": False,  # older lumen's name, old: removed
        "e.png": True,
        ".hidden.tmp": True,
        ".notes.txt.89abcdef.tmp": True,  # not an image's: another program's, old or not
    }
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    old = time.time() - 2 * atomic.LEGACY_STALE_SECONDS
    for n in (".d.png.89abcdef.tmp", ".notes.txt.89abcdef.tmp"):
        os.utime(tmp_path / n, (old, old))
    atomic.sweep(tmp_path)
    assert {n for n, keep in names.items() if keep} == set(os.listdir(tmp_path))


def test_next_run_sweeps_stale_temporaries(tmp_path, img):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.png.999999999-0123abcd.tmp").write_bytes(b"half")  # pid beyond pid_max
    r = lumen("enhance", img, "-o", out / "a.png", "--skip-existing")
    assert r.returncode == 0, err_of(r)
    assert os.listdir(out) == ["a.png"]


# -- 9. weak messages ---------------------------------------------------------------------------


def test_clear_messages(tmp_path, img, dim_image):
    import cv2

    d = tmp_path / "m"
    d.mkdir()
    data = bytearray(img.read_bytes())
    data[29] ^= 0xFF
    (d / "crc.png").write_bytes(bytes(data))
    ok, enc = cv2.imencode(".tif", np.random.rand(8, 8, 3).astype(np.float32))
    (d / "float.tif").write_bytes(enc.tobytes())
    ims = [Image.fromarray((dim_image(16, 16, seed=s) * 255).astype(np.uint8)) for s in range(3)]
    ims[0].save(d / "anim.webp", save_all=True, append_images=ims[1:])
    ims[0].save(d / "pages.tif", save_all=True, append_images=ims[1:])
    ims[0].save(d / "icc.png", icc_profile=bytes(range(256)) * 2)
    r = lumen("enhance", d, "-o", tmp_path / "o")
    err = err_of(r)
    assert "crc.png: corrupt PNG" in err
    assert "float.tif: a TIFF lumen cannot decode (32-bit float" in err
    assert "anim.webp: has 3 frames" in err and "pages.tif: has 3 pages" in err
    assert "icc.png: unreadable (damaged) ICC profile" in err and "\ufffd" not in err
    r = lumen("enhance", img, "--max-pixels", "10")
    assert r.returncode == 1 and "limit of 0.0" not in err_of(r)


def test_os_errors_are_plain_words(tmp_path, img):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    r = lumen("enhance", img, "-o", tmp_path / "blocker" / "sub" / "o.png")
    err = err_of(r)
    assert r.returncode == 1 and "[Errno" not in err and "in the way" in err, err
    if os.name == "posix" and os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        r = lumen("enhance", img, "-o", ro / "o.png")
        err = err_of(r)
        assert r.returncode == 1 and "[Errno" not in err and "permission denied" in err, err


@pytest.mark.parametrize("hw", [(1, 1), (2, 2), (1, 50), (50, 1)])
def test_classical_retinex_itself_copes_with_tiny_images(hw):
    import torch

    from lumen_cli.ops.filters import estimate_noise
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.registry import METHODS

    x = torch.rand(1, 3, *hw) * 0.3
    assert np.isfinite(estimate_noise(x))
    pipe = METHODS["retinex"].load_class()({})
    ctx = pipe.analyze(x, EnhanceOptions(), torch.Generator())
    ctx["hw"] = hw
    y = pipe.enhance(x, ctx, (0, 0, *hw), EnhanceOptions())
    assert y.shape == x.shape and bool(torch.isfinite(y).all())


def test_unlistable_folder_is_a_message(tmp_path, monkeypatch):
    from lumen_cli.cli import plan
    from lumen_cli.errors import UsageError

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", deny)
    with pytest.raises(UsageError, match="cannot list this folder .Permission denied"):
        plan.collect([str(tmp_path)], False, print)
