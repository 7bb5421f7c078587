"""``--weights org/repo[@revision][:file]``: a lumen weight file from any Hub model repository.

The file is fetched with ``huggingface_hub.hf_hub_download(..., library_name="lumen")`` into
the usual HF cache (``HF_HUB_OFFLINE=1`` honoured: then only the cache is read) and verified
before use:

- its sha256 must equal the content hash the Hub recorded for it (the name of the cached blob
  for files stored with Git LFS / Xet, which every safetensors file on the Hub is), so a file
  damaged in the cache or in transit is refused;
- it must be a lumen safetensors checkpoint (metadata ``lumen.method``), and the method's.

Without ``@revision`` the repository's ``main`` is used and lumen says which commit that was,
so that it can be pinned. Without ``:file`` the repository must hold exactly one
``.safetensors`` file.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lumen_cli.errors import WeightsError

_SPEC = re.compile(
    r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<rev>[\w./-]+?))?(?::(?P<file>[^:]+))?"
)
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class HubSpec:
    repo_id: str
    revision: str | None  # a branch, tag or commit; None: main
    filename: str | None  # None: the repository's only .safetensors file

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.repo_id}{rev}" + (f":{self.filename}" if self.filename else "")


def parse_spec(value: str | os.PathLike) -> HubSpec | None:
    """A HubSpec when ``value`` names a Hub file rather than a local one, else None.

    A local path wins: an existing file, anything starting with '.', '/', '~' or a drive, and
    a name ending in '.safetensors' with no ':' are local paths.
    """
    text = os.fspath(value)
    if not isinstance(text, str) or os.path.exists(text):
        return None
    if text.startswith((".", "/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", text):
        return None
    if text.endswith(".safetensors") and ":" not in text:
        return None
    m = _SPEC.fullmatch(text)
    if not m:
        return None
    return HubSpec(m["repo"], m["rev"], m["file"])


def silence_progress() -> None:
    """No Hub progress bars in this process (for --quiet and --json)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _only_safetensors(spec: HubSpec, cache_dir: str, offline: bool) -> str:
    """The one .safetensors file of the repository at the spec's revision."""
    names: list[str] = []
    if not offline:
        from huggingface_hub import list_repo_files

        try:
            names = list_repo_files(spec.repo_id, revision=spec.revision)
        except Exception as e:
            raise WeightsError(
                f"--weights {spec}: no such local file, and the Hub repository cannot be "
                f"listed ({e})"
            ) from e
    else:  # the cached snapshot of that revision
        folder = Path(cache_dir) / f"models--{spec.repo_id.replace('/', '--')}"
        rev = spec.revision or "main"
        ref = folder / "refs" / rev
        commit = ref.read_text().strip() if ref.is_file() else rev
        snap = folder / "snapshots" / commit
        names = [str(p.relative_to(snap)) for p in snap.rglob("*")] if snap.is_dir() else []
    found = sorted(n for n in names if n.endswith(".safetensors"))
    if len(found) != 1:
        what = "no .safetensors file" if not found else f"several: {', '.join(found)}"
        where = " in the HF cache (offline)" if offline else ""
        raise WeightsError(
            f"--weights {spec}: {what}{where}; name the file: --weights {spec.repo_id}"
            f"{'@' + spec.revision if spec.revision else ''}:FILE.safetensors"
        )
    return found[0]


def fetch(spec: HubSpec) -> Path:
    """Download (or find in the cache) and verify the file ``spec`` names; its local path."""
    from huggingface_hub import hf_hub_download

    from lumen_cli import __version__
    from lumen_cli.weights.resolve import file_sha256, hub_cache_dir, hub_offline

    cache_dir, offline = str(hub_cache_dir()), hub_offline()
    filename = spec.filename or _only_safetensors(spec, cache_dir, offline)
    try:
        path = Path(
            hf_hub_download(
                spec.repo_id,
                filename,
                revision=spec.revision,
                cache_dir=cache_dir,
                local_files_only=offline,
                library_name="lumen",
                library_version=__version__,
            )
        )
    except Exception as e:  # network, auth, no such repo / revision / file, offline miss
        how = " (offline: HF_HUB_OFFLINE=1 and it is not in the HF cache)" if offline else ""
        raise WeightsError(
            f"--weights {spec}: no such local file, and {filename} cannot be fetched from the "
            f"Hub repository {spec.repo_id}{how}: {e}"
        ) from e
    blob = path.resolve().name
    if _HEX64.fullmatch(blob):
        actual = file_sha256(path)
        if actual != blob:
            raise WeightsError(
                f"--weights {spec}: sha256 mismatch for {path}: the Hub recorded {blob}, the "
                f"file has {actual}. Delete it from the HF cache ({cache_dir}) and try again."
            )
    else:
        raise WeightsError(
            f"--weights {spec}: {filename} has no content hash on the Hub (not stored with "
            "Git LFS), so lumen cannot verify it; download it and pass the local path instead"
        )
    commit = _commit_of(path, filename)
    if spec.revision != commit:
        import warnings

        warnings.warn(
            f"{spec.repo_id}@{spec.revision or 'main'} is commit {commit}; pin it with "
            f"--weights {spec.repo_id}@{commit}:{filename}",
            UserWarning,
            stacklevel=2,
        )
    return path


def _commit_of(path: Path, filename: str) -> str:
    """The snapshot (commit) folder a cached file sits in."""
    p = path
    for _ in Path(filename).parts:
        p = p.parent
    return p.name
