"""Writing one ``[weights.<name>]`` entry back into ``weights_manifest.toml``, with tomlkit.

tomlkit edits the parsed document in place, so the entry's table (and its ``provenance``
sub-table) is replaced or appended while everything else in the file (header comments, other
entries, their layout) is kept as it was. Nested provenance values are written as inline
tables. The result is parsed and validated before it atomically replaces the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from lumen_cli.weights.manifest import WeightEntry, parse_manifest, write_path


def toml_clean(v: Any) -> Any:
    """``v`` made writable as TOML: None values dropped from tables (TOML has no null),
    tuples as lists, keys as str."""
    if isinstance(v, dict):
        return {str(k): toml_clean(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [toml_clean(x) for x in v if x is not None]
    return v


def _item(v: Any):
    """A tomlkit item for a cleaned value: dicts as inline tables, lists as one-line arrays."""
    import tomlkit

    if isinstance(v, dict):
        t = tomlkit.inline_table()
        for k, x in v.items():
            t.append(k, _item(x))
        return t
    if isinstance(v, list):
        a = tomlkit.array()
        a.extend(_item(x) for x in v)
        return a
    return tomlkit.item(v)


def _fields(entry: WeightEntry) -> dict[str, Any]:
    """The entry's keys in manifest order (absent optional ones left out)."""
    fields = {
        "method": entry.method,
        "filename": entry.filename,
        "repo_id": entry.repo_id,
        "revision": entry.revision,
        "sha256": entry.sha256,
        "bundled": entry.bundled,
        "nets": list(entry.nets),
        "license": entry.license,
        "size_bytes": entry.size_bytes,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _plain(value: Any) -> Any:
    """A tomlkit item as plain Python (tables, arrays and scalars alike)."""
    return value.unwrap() if hasattr(value, "unwrap") else value


def _update(table, values: dict[str, Any], keep: tuple[str, ...] = ()) -> None:
    """Make ``table`` hold exactly ``values`` (and the ``keep`` keys it has); keys whose value
    is unchanged are left as they are written (layout, comments), others set or removed."""
    for k in [k for k in table if k not in values and k not in keep]:
        del table[k]
    for k, v in values.items():
        if k not in table:
            table.add(k, _item(v))
        elif _plain(table[k]) != v:
            table[k] = _item(v)


def replace_entry_text(text: str, entry: WeightEntry) -> str:
    """``text`` with the entry's table (and its provenance sub-table) updated, or appended."""
    import tomlkit

    doc = tomlkit.parse(text)
    if "weights" not in doc:
        doc.add("weights", tomlkit.table())
    weights = doc["weights"]
    if entry.name not in weights:
        weights.add(tomlkit.nl())
        weights.add(entry.name, tomlkit.table())
    table = weights[entry.name]
    prov = dict(entry.provenance)
    _update(table, _fields(entry), keep=("provenance",))
    if prov:
        if "provenance" not in table:
            table.add("provenance", tomlkit.table())
        _update(table["provenance"], prov)
    elif "provenance" in table:
        del table["provenance"]
    return tomlkit.dumps(doc)


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

    from lumen_cli.atomic import atomic_path
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
        with atomic_path(mf.BUNDLED_DIR / bundled) as tmp:
            shutil.copyfile(path, tmp)
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
