"""Model cards pushed with the weights, the user-level manifest of wheel installs, and
``--weights org/repo[@revision][:file]`` through a real (pre-filled, offline) HF cache."""

from __future__ import annotations

import pytest

from lumen_cli.errors import WeightsError
from lumen_cli.weights import hub
from lumen_cli.weights import manifest as mf
from lumen_cli.weights import resolve as rs
from tests.test_weights import FILE, REPO, REV, add_entry, env, fill_cache  # noqa: F401


class Commit:
    oid = REV


def test_push_uploads_a_model_card(env):  # noqa: F811
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes())
    add_entry(env, revision="", bundled=FILE)
    calls = []
    rs.push("kind-tiny", "neworg/kind-tiny", upload=lambda **kw: calls.append(kw) or Commit())
    card = calls[0]["path_or_fileobj"].decode()
    assert calls[0]["path_in_repo"] == "README.md"
    head, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    meta = dict(
        line.split(": ", 1) for line in head.splitlines() if ": " in line and line[0] != "-"
    )
    assert meta == {
        "license": "mit",
        "library_name": "lumen",
        "pipeline_tag": "image-to-image",
    }
    assert '- "low-light-image-enhancement"' in head and '- "kind"' in head
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(head)["tags"][-1] == "kind"
    assert "| parameters | 8 (0.00 M) |" in body  # Conv2d(3, 2, 1): 6 weights + 2 biases
    assert "lumen train kind --steps 1" in body and "PSNR: 10.5" in body
    assert "--method kind --weights neworg/kind-tiny:kind-tiny.safetensors" in body
    assert "Protocol: PSNR on 8-bit RGB" in body


def test_card_licence_ids():
    from dataclasses import replace

    from lumen_cli.weights.card import _front_matter

    e = mf.WeightEntry("x", "kind", "x.safetensors", "o/x", "", "0" * 64, license="CC-BY-NC-4.0")
    assert "license: cc-by-nc-4.0\n" in _front_matter(e)
    odd = _front_matter(replace(e, license="research-only"))
    assert 'license: other\nlicense_name: "research-only"' in odd


def test_wheel_install_pushes_to_the_user_manifest(env, tmp_path, monkeypatch):  # noqa: F811
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes())
    add_entry(env, revision="", bundled=FILE)
    packaged = tmp_path / "site-packages" / "lumen_cli" / "weights_manifest.toml"
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(env["manifest"].read_bytes())
    before = packaged.read_bytes()
    monkeypatch.delenv(mf.ENV_MANIFEST)
    monkeypatch.setattr(mf, "packaged_manifest", lambda: packaged)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "cfg"))
    user = mf.user_manifest_path()
    assert mf.write_path() == user and mf.manifest_path() == packaged
    entry = rs.push("kind-tiny", "me/kind-tiny", upload=lambda **kw: Commit())
    assert packaged.read_bytes() == before  # site-packages untouched
    assert user.is_file() and mf._read(user)["kind-tiny"] == entry
    assert mf.load_manifest()["kind-tiny"].revision == REV  # the user entry wins


def test_manifest_edit_keeps_comments_and_layout(env):  # noqa: F811
    add_entry(env, revision="")
    text = env["manifest"].read_text()
    text = text.replace('revision = ""', 'revision = ""   # set by lumen weights push')
    text = text.replace(
        "[weights.kind-tiny.provenance]", "# how it was made\n[weights.kind-tiny.provenance]"
    )
    env["manifest"].write_text(text)
    add_entry(env, revision=REV)
    after = env["manifest"].read_text()
    # only the value changed: the comments (even the one on that line) and the rest stay
    assert after == text.replace('revision = ""', f'revision = "{REV}"')


@pytest.mark.parametrize(
    "text, spec",
    [
        ("org/repo", ("org/repo", None, None)),
        ("org/repo@v1.0", ("org/repo", "v1.0", None)),
        (f"org/repo@{REV}:sub/w.safetensors", ("org/repo", REV, "sub/w.safetensors")),
        ("org/repo:w.safetensors", ("org/repo", None, "w.safetensors")),
        ("runs/kind.safetensors", None),  # a (missing) local file, not a repo
        ("./org/repo", None),
        ("/abs/path", None),
    ],
)
def test_parse_spec(text, spec):
    got = hub.parse_spec(text)
    assert (None if got is None else (got.repo_id, got.revision, got.filename)) == spec


def test_weights_from_hub_repo_offline_cache(env):  # noqa: F811
    link = fill_cache(env["cache"], env["ckpt"], env["sha"])
    assert rs.resolve(None, f"{REPO}@{REV}:{FILE}") == link
    with pytest.warns(UserWarning, match=f"is commit {REV}"):  # main, and no file named
        assert rs.resolve(None, REPO) == link
    method, nets, _ = rs.load_weights(None, f"{REPO}@{REV}")
    assert method == "kind" and set(nets) == {"decom"}


def test_weights_from_hub_tampered_or_missing(env):  # noqa: F811
    link = fill_cache(env["cache"], env["ckpt"], env["sha"])
    link.resolve().write_bytes(link.read_bytes() + b"x")
    rs._verified.clear()
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        rs.resolve(None, f"{REPO}@{REV}:{FILE}")
    with pytest.raises(WeightsError, match="offline"):
        rs.resolve(None, f"{REPO}@{REV}:other.safetensors")


def test_quiet_silences_hub_progress(monkeypatch):
    import os

    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # restored after the test
    try:
        hub.silence_progress()
        assert are_progress_bars_disabled() and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "0"
        enable_progress_bars()
