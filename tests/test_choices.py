"""Typed option choices (help, parser, shell completion), option consistency checks and the
terminal guard of ``-o -``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lumen_cli.cli import choices
from lumen_cli.cli.app import app, main
from lumen_cli.pipelines.registry import DEFAULT_METHOD, METHODS
from tests.conftest import save_png

REPO = Path(__file__).resolve().parents[1]


def _complete(words: str, cword: int) -> subprocess.CompletedProcess:
    code = "import sys; from lumen_cli.cli.app import main; main()\n"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "_LUMEN_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    probe = (
        "import sys, atexit\n"
        "atexit.register(lambda: sys.stderr.write('TORCH' if 'torch' in sys.modules else ''))\n"
        "sys.argv = ['lumen']\n" + code
    )
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )


def test_method_choices_are_the_registry():
    import typer.main

    assert choices.complete_method("") == list(METHODS)
    assert DEFAULT_METHOD in METHODS and DEFAULT_METHOD in choices.METHOD_HELP
    cmd = typer.main.get_command(app).commands["enhance"]
    (opt,) = [p for p in cmd.params if p.name == "method"]
    assert opt.metavar == "[" + "|".join(METHODS) + "]" and opt.default == DEFAULT_METHOD


def test_shell_completion_of_methods_and_devices_without_torch():
    r = _complete("lumen enhance --method ", 3)
    assert r.stdout.split() == list(METHODS), r.stderr
    assert "TORCH" not in r.stderr
    r = _complete("lumen enhance --device cu", 3)
    assert r.stdout.split() == ["cuda", "cuda:0"]
    r = _complete("lumen eval --precision ", 3)
    assert r.stdout.split() == ["auto", "fp32", "bf16", "fp16"]
    from lumen_cli.weights.manifest import load_manifest

    names = list(load_manifest())
    if names:  # weight files (method-preset names) complete for lumen weights
        r = _complete(f"lumen weights path {names[0][:2]}", 3)
        assert names[0] in r.stdout.split() and "TORCH" not in r.stderr


def test_completion_options_are_offered(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert "--install-completion" in out and "--show-completion" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--method", "nope"],
        ["--device", "gpu"],
        ["--precision", "fp8"],
        ["--format", "gif"],
        ["-o", "{out}/x.png", "--format", "bmp"],
    ],
)
def test_bad_choices_are_usage_errors(tmp_path, dim_image, args):
    save_png(tmp_path / "a.png", dim_image(8, 8))
    args = [a.replace("{out}", str(tmp_path)) for a in args]
    assert main(["enhance", str(tmp_path / "a.png"), *args, "-q"]) == 2
    assert not (tmp_path / "x.bmp").exists() and not (tmp_path / "x.png").exists()


def test_format_consistent_with_output_suffix(tmp_path, dim_image):
    save_png(tmp_path / "a.png", dim_image(8, 8))
    rc = main(
        ["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.jpg"), "--format", "jpeg"]
    )
    assert rc == 0 and (tmp_path / "x.jpg").is_file()


def test_stdout_terminal_is_refused(tmp_path, dim_image, monkeypatch, capsys):
    save_png(tmp_path / "a.png", dim_image(8, 8))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["enhance", str(tmp_path / "a.png"), "-o", "-"]) == 2
    assert "terminal" in capsys.readouterr().err


def test_every_enhance_decompose_eval_option_has_help():
    import typer.main

    group = typer.main.get_command(app)
    for name in ("enhance", "decompose", "eval"):
        cmd = group.commands[name]
        bare = [p.name for p in cmd.params if not getattr(p, "help", None)]
        assert bare == [], (name, bare)
    ev = {p.name: p for p in group.commands["eval"].params}
    assert ev["device"].default == "auto"
