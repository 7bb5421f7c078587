"""Writing one ``[weights.<name>]`` entry back into ``weights_manifest.toml``.

Only the lines of that entry (its table and its sub-tables) are replaced, or the entry is
appended; everything else in the file (header comments, other entries) is kept byte for byte.
The result is parsed and validated before it atomically replaces the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from lumen_cli.weights.manifest import WeightEntry, parse_manifest, write_path

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _str(k)


def _str(s: str) -> str:
    # JSON string escapes (\" \\ \n \t \uXXXX ...) are all valid TOML basic-string escapes.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} to the manifest")


def toml_clean(v: Any) -> Any:
    """``v`` made writable as TOML: None values dropped from tables (TOML has no null),
    tuples as lists, keys as str."""
    if isinstance(v, dict):
        return {str(k): toml_clean(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [toml_clean(x) for x in v if x is not None]
    return v


def render_entry(entry: WeightEntry) -> str:
    """TOML text of one entry: its table, then ``provenance`` as a sub-table."""
    head = f"weights.{_key(entry.name)}"
    fields: dict[str, Any] = {
        "method": entry.method,
        "filename": entry.filename,
        "repo_id": entry.repo_id,
        "revision": entry.revision,
        "sha256": entry.sha256,
    }
    if entry.bundled:
        fields["bundled"] = entry.bundled
    fields["nets"] = list(entry.nets)
    fields["license"] = entry.license
    if entry.size_bytes is not None:
        fields["size_bytes"] = entry.size_bytes
    lines = [f"[{head}]"] + [f"{k} = {_value(v)}" for k, v in fields.items()]
    if entry.provenance:
        lines += ["", f"[{head}.provenance]"]
        lines += [f"{_key(str(k))} = {_value(v)}" for k, v in entry.provenance.items()]
    return "\n".join(lines) + "\n"


def _header_name(line: str) -> list[str] | None:
    """Dotted key parts of a table header line, or None if the line is not a header."""
    m = _HEADER.match(line)
    if not m:
        return None
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', m.group(1))
    return [json.loads(f'"{dq}"') if dq else (sq or bare) for dq, sq, bare in parts]


def replace_entry_text(text: str, entry: WeightEntry) -> str:
    """``text`` with the entry's table (and sub-tables) replaced by ``render_entry(entry)``."""
    lines = text.splitlines(keepends=True)
    start = end = None
    for i, line in enumerate(lines):
        parts = _header_name(line)
        if parts is None:
            continue
        mine = len(parts) >= 2 and parts[0] == "weights" and parts[1] == entry.name
        if mine and start is None:
            start = i
        elif not mine and start is not None and end is None:
            end = i
    block = render_entry(entry)
    if start is None:  # append, separated by one blank line
        body = text.rstrip("\n")
        return (body + "\n\n" if body else "") + block
    end = len(lines) if end is None else end
    while end - 1 > start:  # blank lines / comments before the next table stay with it
        stripped = lines[end - 1].strip()
        if stripped and not stripped.startswith("#"):
            break
        end -= 1
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + block + ("\n" + tail.lstrip("\n") if tail.strip() else "")


def write_entry(entry: WeightEntry, path: str | os.PathLike | None = None) -> WeightEntry:
    """Put ``entry`` into the manifest at ``path`` (default: ``write_path()``: never a file
    inside an installed package) atomically.

    Returns the entry as written (provenance passed through ``toml_clean``)."""
    path = Path(path) if path is not None else write_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = replace(entry, provenance=toml_clean(entry.provenance))
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new = replace_entry_text(text, entry)
    check = parse_manifest(new, path)  # never write a file lumen cannot read back
    if check.get(entry.name) != entry:
        raise RuntimeError(f"manifest writer produced a different entry for {entry.name!r}")
    from lumen_cli.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(new)
    return entry


def set_published(
    name: str, repo_id: str, revision: str, path: str | os.PathLike | None = None
) -> WeightEntry:
    """Record that entry ``name`` now lives at ``repo_id``@``revision``; return the new entry."""
    from lumen_cli.weights.manifest import get_entry

    entry = replace(get_entry(name, path), repo_id=repo_id, revision=revision)
    return write_entry(entry, path)


def register_checkpoint(
    name: str,
    path: str | os.PathLike,
    *,
    repo_id: str = "",
    license: str = "",
    bundle: bool = False,
    provenance: dict[str, Any] | None = None,
    manifest: str | os.PathLike | None = None,
) -> WeightEntry:
    """Add (or update) manifest entry ``name`` for the lumen checkpoint at ``path``.

    For ``lumen train export``: method, nets, sha256 and size come from the file; provenance
    defaults to the file's ``lumen.provenance`` metadata (or the entry's, for the same file).
    With ``bundle=True`` the file is copied to ``lumen_cli/weights/bundled/<name>.safetensors``.
    An existing entry keeps its Hub coordinates only while the file is unchanged; a new file
    is unpublished (``revision = ""``) until ``lumen weights push``.
    """
    import shutil

    from lumen_cli.weights import manifest as mf
    from lumen_cli.weights.checkpoint import check_lumen_file, describe_nets, sha256_file

    path = Path(path)
    meta = check_lumen_file(path)
    sha = sha256_file(path)
    old = mf.load_manifest(manifest).get(name)
    same_file = old is not None and old.sha256 == sha
    if provenance is None:
        provenance = json.loads(meta.get("lumen.provenance", "{}"))
        if not provenance and same_file:
            provenance = old.provenance
    bundled = None
    if bundle:
        bundled = f"{name}.safetensors"
        mf.BUNDLED_DIR.mkdir(parents=True, exist_ok=True)
        dest = mf.BUNDLED_DIR / bundled
        tmp = dest.with_name(f".{bundled}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
    elif same_file:  # a bundled copy of another file would fail its sha256 check
        bundled = old.bundled
    entry = WeightEntry(
        name=name,
        method=meta["lumen.method"],
        filename=old.filename if old else f"{name}.safetensors",
        repo_id=repo_id or (old.repo_id if old else ""),
        revision=old.revision if same_file and repo_id in ("", old.repo_id) else "",
        sha256=sha,
        bundled=bundled,
        nets=tuple(describe_nets(meta)),
        license=license or (old.license if old else ""),
        provenance=provenance,
        size_bytes=path.stat().st_size,
    )
    return write_entry(entry, manifest)
