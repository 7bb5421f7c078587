"""From a manifest entry to a checked local file: ``--weights PATH`` > HF cache / Hub > bundled.

- ``--weights PATH``: the user's file is trusted (no sha256 to compare with) but must be a
  lumen safetensors checkpoint, and of the right method when an entry is given.
  ``--weights org/repo[@revision][:file]`` fetches and verifies a Hub file first (weights/hub.py).
- HF cache / Hub (published entries only, i.e. a pinned 40-hex ``revision``): the cache is read
  through ``huggingface_hub.hf_hub_download(..., revision=<pinned>)``. A file already in the
  cache (or bundled, which holds the very same bytes, checked by sha256) is used without any
  network access; only when neither is present is the file downloaded, unless
  ``HF_HUB_OFFLINE=1`` or ``allow_download=False``.
- bundled copy under ``lumen_cli/weights/bundled/``.

Every manifest file is checked against its sha256 before use; a mismatch is a WeightsError.
The HF cache folder and offline mode are read from the environment at call time
(``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``, ``HF_HUB_OFFLINE``), so they
behave the same whether or not huggingface_hub was imported before they were set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from lumen_cli.errors import WeightsError
from lumen_cli.weights.checkpoint import check_lumen_file, sha256_file
from lumen_cli.weights.manifest import WeightEntry, get_entry

Status = Literal["bundled", "cached", "missing"]
_verified: dict[tuple[str, int, int], str] = {}  # (real path, mtime_ns, size) -> sha256


# -- environment --------------------------------------------------------------------------
def hub_cache_dir() -> Path:
    """The HF hub cache folder, from the environment as it is now."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    v = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return v.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _entry(name_or_entry: str | WeightEntry) -> WeightEntry:
    return name_or_entry if isinstance(name_or_entry, WeightEntry) else get_entry(name_or_entry)


# -- sha256 -------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """sha256 of ``path``, computed once per (file, mtime, size) in this process."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_mtime_ns, st.st_size)
    if key not in _verified:
        _verified[key] = sha256_file(real)
    return _verified[key]


def check_sha256(entry: WeightEntry, path: Path, where: str) -> Path:
    """Return ``path`` if its sha256 is the entry's; else a WeightsError saying what to do."""
    actual = file_sha256(path)
    if actual != entry.sha256:
        fix = (
            f"delete it and run `lumen weights pull {entry.name}` to fetch a clean copy"
            if where == "cache"
            else "reinstall lumen (the packaged file is damaged)"
        )
        raise WeightsError(
            f"sha256 mismatch for {entry.filename} ({where} copy at {path}):\n"
            f"  expected {entry.sha256}\n  actual   {actual}\n"
            f"The file is corrupt or was replaced; lumen will not load it. To fix: {fix}, "
            "or pass --weights PATH."
        )
    return path


# -- where a file can be ------------------------------------------------------------------
def cached_path(entry: WeightEntry) -> Path | None:
    """The file in the HF cache at the pinned revision, or None (no network, no checks)."""
    if not entry.published:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        entry.repo_id, entry.filename, cache_dir=str(hub_cache_dir()), revision=entry.revision
    )
    return Path(found) if isinstance(found, str) else None


def bundled_file(entry: WeightEntry) -> Path | None:
    p = entry.bundled_path
    return p if p is not None and p.is_file() else None


def status(name_or_entry: str | WeightEntry) -> Status:
    """'cached' (in the HF cache at the pinned revision), 'bundled', or 'missing'."""
    entry = _entry(name_or_entry)
    if cached_path(entry) is not None:
        return "cached"
    if bundled_file(entry) is not None:
        return "bundled"
    return "missing"


def _hub_download(entry: WeightEntry, *, local_only: bool, force: bool = False) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            entry.repo_id,
            entry.filename,
            revision=entry.revision,
            cache_dir=str(hub_cache_dir()),
            local_files_only=local_only,
            force_download=force,
        )
    )


def _missing(entry: WeightEntry, why: str) -> WeightsError:
    if not entry.published:
        how = (
            f"They are not published on the Hub yet (intended repo: {entry.repo_id or 'none'}), "
            "and this install has no bundled copy. Train them with `lumen train` and pass "
            "--weights PATH."
        )
    else:
        how = (
            f"Run `lumen weights pull {entry.name}` on a connected machine (it fills the HF "
            f"cache at {hub_cache_dir()}; copy that folder here), or pass --weights PATH."
        )
    return WeightsError(f"weights {entry.name!r}: file {entry.filename} is missing ({why}). {how}")


# -- the entry points ---------------------------------------------------------------------
def resolve(
    name_or_entry: str | WeightEntry | None,
    weights_path: str | os.PathLike | None = None,
    *,
    allow_download: bool = True,
) -> Path:
    """Local path of a checked weight file for a manifest entry (or the user's own file).

    ``name_or_entry``: a manifest name, a ``WeightEntry``, or None when ``weights_path`` is
    given for a method without manifest entries. Raises WeightsError when no usable file is
    found (the message names the file and how to get it) or a sha256 does not match.
    """
    if weights_path is not None:
        from lumen_cli.weights.hub import fetch, parse_spec

        spec = parse_spec(weights_path)
        path = fetch(spec) if spec is not None else Path(weights_path).expanduser()
        meta = check_lumen_file(path)  # exists, safetensors, lumen metadata
        if name_or_entry is not None:
            entry = _entry(name_or_entry)
            if meta["lumen.method"] != entry.method:
                raise WeightsError(
                    f"{path} holds weights for method {meta['lumen.method']!r}, "
                    f"not {entry.method!r}"
                )
        return path
    if name_or_entry is None:
        raise ValueError("resolve: give a manifest entry or a weights path")
    entry = _entry(name_or_entry)

    if entry.published:  # the real hub code path, reading the cache only
        try:
            return check_sha256(entry, _hub_download(entry, local_only=True), "cache")
        except WeightsError:
            raise
        except Exception:  # not in the cache (LocalEntryNotFoundError)
            pass
    bundled = bundled_file(entry)
    if bundled is not None:
        return check_sha256(entry, bundled, "bundled")
    if not entry.published:
        raise _missing(entry, "not published yet, no bundled copy")
    if hub_offline() or not allow_download:
        why = "offline (HF_HUB_OFFLINE=1)" if hub_offline() else "downloads not allowed here"
        raise _missing(entry, f"not in the HF cache, {why}")
    try:
        path = _hub_download(entry, local_only=False)
    except Exception as e:  # network, auth, missing repo/revision ...
        raise _missing(
            entry, f"download from {entry.repo_id}@{entry.revision[:8]} failed: {e}"
        ) from e
    return check_sha256(entry, path, "cache")


def load_weights(
    name_or_entry: str | WeightEntry | None,
    weights_path: str | os.PathLike | None = None,
    device="cpu",
    *,
    allow_download: bool = True,
):
    """``resolve`` then ``checkpoint.load_nets``: ``(method, {net: nn.Module}, metadata)``.

    The nets are in eval mode on ``device``; a manifest file must hold the nets its entry lists.
    """
    from lumen_cli.weights.checkpoint import load_nets

    path = resolve(name_or_entry, weights_path, allow_download=allow_download)
    method, nets, meta = load_nets(path, device)
    if weights_path is None and name_or_entry is not None:
        entry = _entry(name_or_entry)
        if entry.nets and set(entry.nets) != set(nets):
            raise WeightsError(
                f"{path}: holds nets {sorted(nets)}, the manifest entry {entry.name!r} "
                f"lists {sorted(entry.nets)}"
            )
    return method, nets, meta


def pull(name_or_entry: str | WeightEntry) -> Path:
    """Make sure the entry's file is in the HF cache at its pinned revision, and checked.

    A cached copy that fails its sha256 is downloaded again once.
    """
    entry = _entry(name_or_entry)
    if not entry.published:
        raise WeightsError(
            f"weights {entry.name!r} are not published yet (no revision in the manifest), so "
            "there is nothing to pull; "
            + ("a bundled copy is installed." if bundled_file(entry) else "pass --weights PATH.")
        )
    try:
        path = _hub_download(entry, local_only=hub_offline())
    except Exception as e:
        raise _missing(entry, f"cannot fetch {entry.repo_id}@{entry.revision[:8]}: {e}") from e
    if file_sha256(path) != entry.sha256 and not hub_offline():
        path = _hub_download(entry, local_only=False, force=True)
    return check_sha256(entry, path, "cache")


def verify(name_or_entry: str | WeightEntry) -> tuple[bool, Path | None, str]:
    """Check every local copy (cache, bundled) of an entry: ``(ok, path resolve uses, msg)``."""
    entry = _entry(name_or_entry)
    copies = [("cache", cached_path(entry)), ("bundled", bundled_file(entry))]
    present = [(where, p) for where, p in copies if p is not None]
    if not present:
        return False, None, str(_missing(entry, "no cached or bundled copy"))
    notes, ok = [], True
    for where, p in present:
        try:
            check_sha256(entry, p, where)
            notes.append(f"{where} copy OK ({p})")
        except WeightsError as e:
            ok = False
            notes.append(str(e))
    return ok, present[0][1], "\n".join(notes)


def _hub_upload(*, path_or_fileobj, path_in_repo, repo_id, token, commit_message):
    """Create the model repo if needed and upload one file; returns huggingface_hub CommitInfo."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    return api.upload_file(
        path_or_fileobj=path_or_fileobj,
        path_in_repo=path_in_repo,
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message,
    )


def push(
    name: str,
    repo_id: str,
    token: str | None = None,
    upload=None,
    *,
    path: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    card: bool = True,
) -> WeightEntry:
    """Publish entry ``name``'s file to ``repo_id`` and pin the returned commit in the manifest.

    With ``card`` a ``README.md`` model card (weights/card.py) is uploaded first, so the pinned
    commit (the weight file's) holds both. The manifest written is ``manifest`` or else
    ``manifest.write_path()``: on a wheel install the user-level manifest, never a file in
    site-packages.

    The file uploaded is ``path`` or else the entry's local copy (bundled, then cached); its
    sha256 must equal the manifest's. ``upload`` (keyword arguments as ``HfApi.upload_file``
    plus ``token``; returns an object with ``.oid``) replaces the real upload in tests.
    Needs a network and a Hub token with write access (``--token`` or ``HF_TOKEN``).
    """
    from lumen_cli.weights.manifest import REPO_ID
    from lumen_cli.weights.manifest_write import set_published

    entry = get_entry(name, manifest)
    if not REPO_ID.fullmatch(repo_id):
        raise WeightsError(f"--repo-id must look like ORG/NAME, got {repo_id!r}")
    src = Path(path) if path is not None else (bundled_file(entry) or cached_path(entry))
    if src is None or not src.is_file():
        raise _missing(entry, "nothing local to upload")
    check_sha256(entry, src, "bundled" if path is None else "given")
    check_lumen_file(src)
    send = upload or _hub_upload
    if card:
        from lumen_cli.weights.card import render_card

        send(
            path_or_fileobj=render_card(entry, src, repo_id).encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            token=token,
            commit_message=f"lumen: model card for {entry.name}",
        )
    info = send(
        path_or_fileobj=str(src),
        path_in_repo=entry.filename,
        repo_id=repo_id,
        token=token,
        commit_message=f"lumen: upload {entry.filename} ({entry.name}, sha256 {entry.sha256[:12]})",
    )
    revision = getattr(info, "oid", None)
    if not isinstance(revision, str) or len(revision) != 40:
        raise WeightsError(f"upload to {repo_id} returned no 40-hex commit id ({info!r})")
    return set_published(name, repo_id, revision, manifest)
