"""``weights_manifest.toml``: one ``[weights.<name>]`` entry per weight file.

Schema of an entry (see the comment at the top of the manifest itself)::

    [weights.kind-lite]
    method = "kind"                       # lumen method the file belongs to
    filename = "kind-lite.safetensors"    # file name in the Hub repo (and in the cache)
    repo_id = "org/kind-lite"             # intended repo, even before it is published
    revision = ""                         # 40-hex commit once published, "" until then
    sha256 = "<64 hex>"                   # of the file's bytes; checked before every use
    bundled = "kind-lite.safetensors"     # optional: file under lumen_cli/weights/bundled/
    nets = ["decom", "restore"]           # nets stored in the file
    license = "MIT"
    size_bytes = 123456                   # optional
    [weights.kind-lite.provenance]        # command, data, steps, val metrics, date ...
    command = "lumen train kind ..."

The manifest is found inside the installed package (``lumen_cli/weights_manifest.toml``, put
there by the wheel build) or else at the repository root; ``$LUMEN_MANIFEST`` (a path to a
manifest of this schema, e.g. one listing your own Hub repositories) overrides both. A wheel
install writes new or changed entries to a user-level manifest instead (``user_manifest_path``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumen_cli.errors import UsageError, WeightsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
ENV_MANIFEST = "LUMEN_MANIFEST"
BUNDLED_DIR = Path(__file__).parent / "bundled"

_REQUIRED = ("method", "filename", "repo_id", "sha256")
_KNOWN = set(_REQUIRED) | {"revision", "bundled", "nets", "license", "provenance", "size_bytes"}


@dataclass(frozen=True)
class WeightEntry:
    """One weight file of the manifest."""

    name: str
    method: str
    filename: str
    repo_id: str
    revision: str
    sha256: str
    bundled: str | None = None
    nets: tuple[str, ...] = ()
    license: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None

    @property
    def published(self) -> bool:
        """True once the file sits on the Hub at a pinned commit (``revision`` is 40 hex)."""
        return bool(HEX40.fullmatch(self.revision))

    @property
    def bundled_path(self) -> Path | None:
        """Where the bundled copy would be (it may be absent from this install)."""
        return BUNDLED_DIR / self.bundled if self.bundled else None


# -- finding and reading ------------------------------------------------------------------
def packaged_manifest() -> Path:
    """Where a wheel install keeps its manifest (``lumen_cli/weights_manifest.toml``)."""
    return Path(__file__).resolve().parents[1] / "weights_manifest.toml"


def manifest_path() -> Path:
    """The manifest this lumen reads: ``$LUMEN_MANIFEST``, the packaged one, or the repo's."""
    env = os.environ.get(ENV_MANIFEST)
    if env:
        return Path(env).expanduser()
    packaged = packaged_manifest()
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "weights_manifest.toml"


def user_manifest_path() -> Path:
    """The user-level manifest: ``$XDG_CONFIG_HOME/lumen/weights_manifest.toml`` (default
    ``~/.config/lumen/``; ``%APPDATA%\\lumen\\`` on Windows). On a wheel install, entries that
    ``lumen weights push`` or ``lumen train export --register`` write go here (the package
    folder belongs to pip), and its entries override the packaged ones of the same name."""
    if os.name == "nt" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "lumen" / "weights_manifest.toml"


def write_path() -> Path:
    """The manifest that entries are written to: ``$LUMEN_MANIFEST`` if set, the user-level
    manifest on a wheel install, else the repository's ``weights_manifest.toml``."""
    if os.environ.get(ENV_MANIFEST):
        return manifest_path()
    return user_manifest_path() if packaged_manifest().is_file() else manifest_path()


def _entry(name: str, raw: Any, where: Path) -> WeightEntry:
    def bad(msg: str) -> WeightsError:
        return WeightsError(f"{where}: [weights.{name}]: {msg}")

    if not isinstance(raw, dict):
        raise bad("must be a table")
    unknown = set(raw) - _KNOWN
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_KNOWN)}")
    for key in _REQUIRED:
        if not isinstance(raw.get(key), str) or (key != "repo_id" and not raw[key]):
            raise bad(f"{key!r} is required and must be a non-empty string")
    for key in ("revision", "bundled", "license"):
        if key in raw and not isinstance(raw[key], str):
            raise bad(f"{key!r} must be a string")
    revision = raw.get("revision", "")
    if revision and not HEX40.fullmatch(revision):
        raise bad(f"revision must be '' (not published) or a 40-hex commit hash, got {revision!r}")
    if not HEX64.fullmatch(raw["sha256"]):
        raise bad(f"sha256 must be 64 lowercase hex digits, got {raw['sha256']!r}")
    repo_id = raw["repo_id"]
    if repo_id and not REPO_ID.fullmatch(repo_id):
        raise bad(f"repo_id must look like 'org/name', got {repo_id!r}")
    if revision and not repo_id:
        raise bad("a published entry (revision set) needs a repo_id")
    filename = raw["filename"]
    if filename.startswith("/") or ".." in filename.split("/"):
        raise bad(f"filename must be relative inside the repo, got {filename!r}")
    bundled = raw.get("bundled") or None
    if bundled is not None and ("/" in bundled or "\\" in bundled or bundled.startswith(".")):
        raise bad(
            f"bundled must be a plain file name under lumen_cli/weights/bundled/: {bundled!r}"
        )
    nets = raw.get("nets", [])
    if not isinstance(nets, list) or not all(isinstance(n, str) for n in nets):
        raise bad("nets must be a list of strings")
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, dict):
        raise bad("provenance must be a table")
    size = raw.get("size_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise bad("size_bytes must be a non-negative integer")
    return WeightEntry(
        name=name,
        method=raw["method"],
        filename=filename,
        repo_id=repo_id,
        revision=revision,
        sha256=raw["sha256"],
        bundled=bundled,
        nets=tuple(nets),
        license=raw.get("license", ""),
        provenance=dict(provenance),
        size_bytes=size,
    )


def parse_manifest(text: str, where: Path | str = "<manifest>") -> dict[str, WeightEntry]:
    """Entries of a manifest given as TOML text (validated)."""
    where = Path(where)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise WeightsError(f"{where}: not valid TOML: {e}") from e
    extra = set(data) - {"weights"}
    if extra:
        raise WeightsError(f"{where}: unknown top-level key(s) {sorted(extra)}; only [weights]")
    table = data.get("weights", {})
    if not isinstance(table, dict):
        raise WeightsError(f"{where}: 'weights' must be a table")
    return {name: _entry(name, raw, where) for name, raw in table.items()}


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, WeightEntry]:
    """All entries of the manifest at ``path``, by name. Default: ``manifest_path()``, overlaid
    with the user-level manifest's entries when lumen is installed from a wheel."""
    entries = _read(Path(path) if path is not None else manifest_path())
    if path is None and write_path() != manifest_path() and write_path().is_file():
        entries.update(_read(write_path()))
    return entries


def _read(path: Path) -> dict[str, WeightEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WeightsError(
            f"weights manifest not found at {path}; the lumen installation is incomplete"
        ) from None
    return parse_manifest(text, path)


def get_entry(name: str, path: str | os.PathLike | None = None) -> WeightEntry:
    """The entry called ``name``; UsageError listing the known names if there is none."""
    entries = load_manifest(path)
    try:
        return entries[name]
    except KeyError:
        known = ", ".join(sorted(entries)) or "none yet"
        raise UsageError(f"no weights named {name!r} in the manifest (known: {known})") from None


def entries_for_method(method: str, path: str | os.PathLike | None = None) -> list[WeightEntry]:
    """Entries whose ``method`` is ``method``, in manifest order."""
    return [e for e in load_manifest(path).values() if e.method == method]
