"""What ``lumen env`` reports beyond devices: the installed version of every dependency lumen
declares (and of its optional extras), and the revision of every weight file in the manifest.
Reads package metadata only; imports none of the packages."""

from __future__ import annotations

import re
from importlib import metadata

#: Used when lumen runs from a source tree that is not installed (no package metadata).
_FALLBACK = (
    "torch", "typer", "click", "rich", "pillow", "opencv-python-headless", "safetensors",
    "huggingface-hub", "numpy", "tomlkit", "tifffile", "pillow-heif", "rawpy",
)  # fmt: skip
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"extra\s*==\s*['\"]([^'\"]+)['\"]")


def declared() -> list[tuple[str, str | None]]:
    """(distribution name, extra or None) of lumen's requirements, test tools left out."""
    try:
        reqs = metadata.requires("lumen-cli") or []
    except metadata.PackageNotFoundError:
        return [(n, None) for n in _FALLBACK]
    out: dict[str, str | None] = {}
    for r in reqs:
        m = _NAME.match(r)
        extra = _EXTRA.search(r)
        if not m or (extra and extra.group(1) == "test") or not _applies(r, extra):
            continue
        out.setdefault(m.group(1), extra.group(1) if extra else None)
    return list(out.items())


def _applies(req: str, extra) -> bool:
    """Whether a requirement's environment marker (python_version, ...) holds here."""
    if ";" not in req:
        return True
    try:
        from packaging.requirements import Requirement
    except ImportError:  # packaging is not a lumen dependency; keep the line then
        return True
    marker = Requirement(req).marker
    return marker is None or marker.evaluate({"extra": extra.group(1) if extra else ""})


def dependency_versions() -> dict[str, str]:
    """{name: installed version, or 'not installed'}, extras marked as such."""
    vers = {}
    for name, extra in declared():
        try:
            v = metadata.version(name)
        except metadata.PackageNotFoundError:
            v = "not installed"
        vers[name] = v + (f" (extra '{extra}')" if extra else "")
    return vers


def weights_revisions() -> dict[str, str]:
    """{weights name: 'repo@revision' or 'unpublished', with the sha256 prefix and where the
    copy lumen would load is}; the manifest's problems are reported as a value, not raised."""
    from lumen_cli.errors import LumenError
    from lumen_cli.weights.manifest import load_manifest
    from lumen_cli.weights.resolve import status

    try:
        entries = load_manifest()
    except LumenError as e:
        return {"manifest": f"unreadable: {e}"}
    out = {}
    for name, e in entries.items():
        pin = f"{e.repo_id}@{e.revision}" if e.published else f"unpublished ({e.repo_id})"
        try:
            where = status(e)
        except Exception as exc:  # a broken HF cache must not break `lumen env`
            where = f"status unknown ({exc})"
        out[name] = f"{pin}, sha256 {e.sha256[:12]}, {where}, licence {e.license or '?'}"
    return out
