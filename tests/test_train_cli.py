"""``lumen train`` / ``lumen train export`` through typer, on the tiny test method."""

from __future__ import annotations

import pytest
import tomllib
import typer
from typer.testing import CliRunner

from lumen_cli.cli.train_cmd import register
from tests.test_train import make_pairs, tiny  # noqa: F401  (fixture)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def version() -> None:  # a second command keeps "train" a named group
        typer.echo("0")

    register(app)
    return app


def test_train_then_export_cli(tiny, tmp_path):  # noqa: F811
    pytest.importorskip("lumen_cli.weights.checkpoint")
    data = make_pairs(tmp_path / "train", n=4)
    run = tmp_path / "run"
    r = CliRunner().invoke(
        _app(),
        [
            "train",
            "--method",
            "tiny",
            "--data",
            str(data),
            "--out",
            str(run),
            "--set",
            "steps=15",
            "--set",
            "main.lr=1e-3",
            "--threads",
            "1",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (run / "main" / "final.pt").exists()
    r = CliRunner().invoke(
        _app(), ["train", "export", str(run), "-o", str(tmp_path / "t.safetensors")]
    )
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output
    manifest = r.output[r.output.index("[weights.") :]
    entry = tomllib.loads(manifest)["weights"]["t"]
    assert entry["method"] == "tiny" and entry["provenance"]["steps"] == 15
    assert entry["provenance"]["command"].startswith("lumen ")


def test_train_cli_usage_errors(tiny, tmp_path):  # noqa: F811
    data = make_pairs(tmp_path / "train", n=2)
    r = CliRunner().invoke(_app(), ["train", "--method", "tiny", "--data", str(data)])
    assert r.exit_code == 2 and "--out" in r.output
    r = CliRunner().invoke(
        _app(),
        [
            "train",
            "--method",
            "tiny",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "r"),
            "--set",
            "nonsense=1",
            "-q",
        ],
    )
    assert r.exit_code == 2 and "nonsense" in r.output
