"""``lumen env``: versions of every declared dependency and the weights' revisions."""

import json

from lumen_cli.cli.app import main
from lumen_cli.envinfo import declared, dependency_versions


def test_declared_dependencies_have_versions():
    names = {n.lower() for n, _ in declared()}
    for dep in ("huggingface-hub", "safetensors", "pillow", "opencv-python-headless", "typer"):
        assert dep in names
    assert "pytest" not in names  # test tools are not reported
    vers = dependency_versions()
    assert vers["typer"][0].isdigit()


def test_env_json_lists_packages_and_weights(capsys):
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "safetensors" in info["packages"] and info["packages"]["safetensors"][0].isdigit()
    assert info["weights"]  # one line per manifest entry
    assert all("sha256" in v for v in info["weights"].values())
