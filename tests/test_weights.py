"""Weights: manifest parsing/writing, resolution through a real pre-filled HF cache (offline),
sha256 checks, missing-file messages, bundled fallback, push with the upload replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from lumen_cli.errors import UsageError, WeightsError
from lumen_cli.nets import registry
from lumen_cli.weights import manifest as mf
from lumen_cli.weights import resolve as rs
from lumen_cli.weights.checkpoint import load_nets, save_nets
from lumen_cli.weights.manifest_write import write_entry

REV = "0123456789abcdef0123456789abcdef01234567"
REPO = "lumen-test/kind-tiny"
FILE = "kind-tiny.safetensors"


class Tiny(nn.Module):
    def __init__(self, width: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 1)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A tiny lumen checkpoint, an empty HF cache, a temp manifest, a temp bundled folder."""
    monkeypatch.setitem(registry.ARCHS, "test.wtiny", f"{__name__}:Tiny")
    torch.manual_seed(0)
    ckpt = tmp_path / "src" / FILE
    sha = save_nets(ckpt, "kind", {"decom": registry.build_net("test.wtiny", {"width": 2})})
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)  # belt and braces: no HTTP in tests
    manifest = tmp_path / "weights_manifest.toml"
    manifest.write_text("# test manifest\n\n[weights]\n")
    monkeypatch.setenv(mf.ENV_MANIFEST, str(manifest))
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(mf, "BUNDLED_DIR", bundled)
    rs._verified.clear()
    return {"ckpt": ckpt, "sha": sha, "cache": cache, "manifest": manifest, "bundled": bundled}


def add_entry(env, name="kind-tiny", revision=REV, bundled=None, **kw) -> mf.WeightEntry:
    entry = mf.WeightEntry(
        name=name,
        method="kind",
        filename=FILE,
        repo_id=REPO,
        revision=revision,
        sha256=kw.pop("sha256", env["sha"]),
        bundled=bundled,
        nets=("decom",),
        license="MIT",
        provenance={"command": "lumen train kind --steps 1", "val": {"psnr": 10.5}},
        **kw,
    )
    write_entry(entry, env["manifest"])
    return entry


def fill_cache(cache: Path, src: Path, sha: str, repo=REPO, rev=REV, filename=FILE) -> Path:
    """The layout huggingface_hub writes: blobs/<sha256>, snapshots/<rev>/<file> -> blob."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    blob = folder / "blobs" / sha
    blob.write_bytes(src.read_bytes())
    snap = folder / "snapshots" / rev
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(rev)
    link = snap / filename
    try:
        link.symlink_to(os.path.relpath(blob, snap))
    except OSError:  # no symlinks (Windows without rights): huggingface_hub copies too
        link.write_bytes(blob.read_bytes())
    return link


# -- manifest -----------------------------------------------------------------------------
def test_repo_manifest_parses():
    root = Path(__file__).resolve().parents[1] / "weights_manifest.toml"
    entries = mf.load_manifest(root)
    for e in entries.values():
        assert e.sha256 and (e.published or e.revision == "")


def test_empty_manifest_and_validation(env):
    assert mf.load_manifest() == {}
    e = add_entry(env)
    assert mf.load_manifest() == {"kind-tiny": e} and e.published
    good = env["manifest"].read_text()
    for old, new, msg in [
        (REV, "abc", "40-hex"),
        (env["sha"], "xyz", "64 lowercase hex"),
        ('license = "MIT"', 'licence = "MIT"', "unknown key"),
        (f'repo_id = "{REPO}"', 'repo_id = ""', "needs a repo_id"),
        ('method = "kind"', "method = 3", "'method' is required"),
    ]:
        env["manifest"].write_text(good.replace(old, new))
        with pytest.raises(WeightsError, match=msg):
            mf.load_manifest()
    env["manifest"].write_text(good)
    with pytest.raises(UsageError, match="no weights named 'nope'"):
        mf.get_entry("nope")


def test_writer_keeps_the_rest_of_the_file(env):
    add_entry(env, name="a", revision="")
    add_entry(env, name="b", revision="")
    before = env["manifest"].read_text()
    assert before.startswith("# test manifest\n\n[weights]\n")
    add_entry(env, name="a", revision=REV, size_bytes=7)  # replace a in place
    after = env["manifest"].read_text()
    assert after.startswith("# test manifest\n\n[weights]\n")
    assert after.index("[weights.a]") < after.index("[weights.b]")
    assert after.split("[weights.b]")[1] == before.split("[weights.b]")[1]
    entries = mf.load_manifest()
    assert entries["a"].revision == REV and entries["a"].size_bytes == 7
    assert entries["a"].provenance["val"] == {"psnr": 10.5}
    assert entries["b"].revision == ""


# -- resolution ---------------------------------------------------------------------------
def test_resolve_from_prefilled_cache_offline(env):
    add_entry(env)
    assert rs.status("kind-tiny") == "missing"
    link = fill_cache(env["cache"], env["ckpt"], env["sha"])
    assert rs.status("kind-tiny") == "cached"
    path = rs.resolve("kind-tiny")
    assert path == link and path.read_bytes() == env["ckpt"].read_bytes()
    method, nets, _ = load_nets(path)
    assert method == "kind" and isinstance(nets["decom"], Tiny)
    method, nets, _ = rs.load_weights("kind-tiny")
    assert method == "kind" and not nets["decom"].training
    ok, vpath, msg = rs.verify("kind-tiny")
    assert ok and vpath == link and "cache copy OK" in msg
    assert rs.pull("kind-tiny") == link  # offline pull: already cached and checked


def test_tampered_cache_file_is_refused(env):
    add_entry(env)
    link = fill_cache(env["cache"], env["ckpt"], env["sha"])
    data = bytearray(link.read_bytes())
    data[-1] ^= 0xFF
    link.resolve().write_bytes(bytes(data))
    with pytest.raises(WeightsError) as ei:
        rs.resolve("kind-tiny")
    msg = str(ei.value)
    assert "sha256 mismatch" in msg and FILE in msg and env["sha"] in msg
    assert "lumen weights pull kind-tiny" in msg
    ok, _, vmsg = rs.verify("kind-tiny")
    assert not ok and "sha256 mismatch" in vmsg


def test_missing_offline_says_which_file_and_how(env):
    add_entry(env)
    with pytest.raises(WeightsError) as ei:
        rs.resolve("kind-tiny")
    msg = str(ei.value)
    assert FILE in msg and "lumen weights pull kind-tiny" in msg and "--weights" in msg
    assert "offline" in msg and ei.value.exit_code == 3


def test_other_revision_in_cache_is_not_used(env):
    add_entry(env)
    fill_cache(env["cache"], env["ckpt"], env["sha"], rev="f" * 40)
    with pytest.raises(WeightsError, match="missing"):
        rs.resolve("kind-tiny")


def test_bundled_copy_used_without_network(env, monkeypatch):
    calls = []
    real = rs._hub_download
    monkeypatch.setattr(rs, "_hub_download", lambda e, **kw: calls.append(kw) or real(e, **kw))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes())
    add_entry(env, bundled=FILE)  # published, not cached, bundled
    assert rs.status("kind-tiny") == "bundled"
    assert rs.resolve("kind-tiny") == env["bundled"] / FILE
    assert calls == [{"local_only": True}]  # cache lookup only, never a download


def test_unpublished_never_touches_the_hub(env, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("network code called for an unpublished entry")

    monkeypatch.setattr(rs, "_hub_download", boom)
    add_entry(env, revision="")
    with pytest.raises(WeightsError, match="not published"):
        rs.resolve("kind-tiny")
    with pytest.raises(WeightsError, match="not published"):
        rs.pull("kind-tiny")
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes())
    add_entry(env, revision="", bundled=FILE)
    assert rs.resolve("kind-tiny") == env["bundled"] / FILE
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes()[:-1] + b"!")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        rs.resolve("kind-tiny")


def test_user_weights_path(env, tmp_path):
    add_entry(env)
    assert rs.resolve("kind-tiny", env["ckpt"]) == env["ckpt"]  # trusted, no sha needed
    assert rs.resolve(None, env["ckpt"]) == env["ckpt"]
    foreign = tmp_path / "model.pth"
    foreign.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        rs.resolve("kind-tiny", foreign)
    other = tmp_path / "other.safetensors"
    save_nets(other, "diff-retinex", {"x": registry.build_net("test.wtiny", {})})
    with pytest.raises(WeightsError, match="method 'diff-retinex', not 'kind'"):
        rs.resolve("kind-tiny", other)


def test_sha_cache_notices_changes(env, tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"one")
    first = rs.file_sha256(p)
    p.write_bytes(b"three")
    assert rs.file_sha256(p) != first


# -- publishing ---------------------------------------------------------------------------
def test_push_pins_the_returned_commit(env):
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes())
    add_entry(env, revision="", bundled=FILE)
    calls = []

    class CommitInfo:
        oid = REV

    def fake_upload(**kw):
        calls.append(kw)
        return CommitInfo()

    entry = rs.push("kind-tiny", "neworg/kind-tiny", token="t0k", upload=fake_upload)
    assert len(calls) == 2 and calls[1]["repo_id"] == "neworg/kind-tiny"
    assert calls[0]["path_in_repo"] == "README.md"  # the model card first, then the file
    assert calls[1]["path_in_repo"] == FILE and calls[1]["token"] == "t0k"
    assert Path(calls[1]["path_or_fileobj"]) == env["bundled"] / FILE
    assert entry.published and entry.revision == REV and entry.repo_id == "neworg/kind-tiny"
    again = mf.load_manifest()["kind-tiny"]
    assert again == entry and again.provenance["command"] == "lumen train kind --steps 1"
    assert env["manifest"].read_text().startswith("# test manifest\n")
    # the pinned coordinates now lead the resolver into the HF cache
    link = fill_cache(env["cache"], env["ckpt"], env["sha"], repo="neworg/kind-tiny")
    assert rs.resolve("kind-tiny") == link


def test_push_refuses_bad_commit_and_wrong_file(env):
    (env["bundled"] / FILE).write_bytes(env["ckpt"].read_bytes())
    add_entry(env, revision="", bundled=FILE)
    with pytest.raises(WeightsError, match="40-hex"):
        rs.push("kind-tiny", "o/n", upload=lambda **kw: type("C", (), {"oid": "nope"})())
    assert mf.load_manifest()["kind-tiny"].revision == ""
    with pytest.raises(WeightsError, match="ORG/NAME"):
        rs.push("kind-tiny", "not a repo", upload=lambda **kw: None)
    add_entry(env, revision="", bundled=FILE, sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        rs.push("kind-tiny", "o/n", upload=lambda **kw: None)


# -- the `lumen weights` sub-app ------------------------------------------------------------
def test_cli_list_path_verify(env):
    from typer.testing import CliRunner

    from lumen_cli.cli.weights_cmd import app

    runner = CliRunner()
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "No weights in the manifest" in r.stdout
    add_entry(env)
    add_entry(env, name="other", revision="")
    link = fill_cache(env["cache"], env["ckpt"], env["sha"])
    r = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if "kind-tiny" in line)
    assert "cached" in row and REPO in row and REV[:8] in row and "MIT" in row
    other = next(line for line in r.stdout.splitlines() if "other" in line)
    assert "missing" in other and "not published" in other
    r = runner.invoke(app, ["path", "kind-tiny"])
    assert r.exit_code == 0 and r.stdout.strip() == str(link)
    r = runner.invoke(app, ["verify", "kind-tiny"])
    assert r.exit_code == 0 and "OK" in r.stdout
    link.resolve().write_bytes(b"tampered")
    rs._verified.clear()
    r = runner.invoke(app, ["verify"])
    assert isinstance(r.exception, WeightsError) and "kind-tiny" in str(r.exception)
    assert "sha256 mismatch" in r.stdout


def test_register_checkpoint_for_export(env):
    from lumen_cli.weights.manifest_write import register_checkpoint

    e = register_checkpoint(
        "kind-tiny", env["ckpt"], repo_id=REPO, license="MIT", bundle=True, provenance={"steps": 3}
    )
    assert (e.method, e.nets, e.sha256, e.revision) == ("kind", ("decom",), env["sha"], "")
    assert e.size_bytes == env["ckpt"].stat().st_size and e.filename == FILE
    assert (env["bundled"] / FILE).read_bytes() == env["ckpt"].read_bytes()
    assert mf.load_manifest()["kind-tiny"] == e
    assert rs.resolve("kind-tiny") == env["bundled"] / FILE
    rs.push("kind-tiny", REPO, upload=lambda **kw: type("C", (), {"oid": REV})())
    again = register_checkpoint("kind-tiny", env["ckpt"])  # same file: keeps its pin
    assert again.revision == REV and again.bundled == FILE and again.provenance == {"steps": 3}
    # provenance as train export writes it: nested tables, None, tuples, odd strings
    prov = {
        "data": None,
        "settings": {"preset": "lite", "lr": 1e-4, "sizes": (32, 64)},
        "notes": ['stage "a" stopped', "ünïcode\ttab"],
        "steps": {"decom": 10},
    }
    e = register_checkpoint("kind-tiny", env["ckpt"], provenance=prov)
    assert (
        mf.load_manifest()["kind-tiny"].provenance
        == {
            "settings": {"preset": "lite", "lr": 1e-4, "sizes": [32, 64]},
            "notes": ['stage "a" stopped', "ünïcode\ttab"],
            "steps": {"decom": 10},
        }
        == e.provenance
    )
