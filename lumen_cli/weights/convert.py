"""``lumen weights convert``: official checkpoints -> lumen safetensors (``paper`` presets).

The official files are pickles (``torch.save``) or TensorFlow tensor bundles. Pickles are read
only here, with ``torch.load(weights_only=True)`` and an explicit allow-list of the few
non-tensor classes the official training scripts store beside the weights (an
``argparse.Namespace`` of options, ...). Anything else is refused: no arbitrary code is
unpickled.

Each method's ``methods/<name>/convert.py`` provides ``convert(sources: list[Path]) ->
Converted``: nets of the ``paper`` preset built with ``lumen_cli.nets.registry.build_net`` and
loaded strictly from the official tensors. This module writes them with
``checkpoint.save_nets``, adding the provenance metadata (method, preset, source names and
sha256).
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumen_cli.errors import UsageError, WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

# method -> "module:function" (explicit, imported only when used)
CONVERTERS: dict[str, str] = {
    "diff-retinex": "lumen_cli.methods.diff_retinex.convert:convert",
    "kind": "lumen_cli.methods.kind.convert:convert",
    "lighten-diffusion": "lumen_cli.methods.lighten_diffusion.convert:convert",
    "lldiffusion": "lumen_cli.methods.lldiffusion.convert:convert",
    "refusion": "lumen_cli.methods.refusion.convert:convert",
}

# classes the official pickles may hold besides tensors and plain containers
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


@dataclass
class Converted:
    """What a method's converter returns: the nets (built by ``build_net``, weights loaded),
    the preset they form, and notes (e.g. which nets the official files lacked)."""

    nets: dict[str, nn.Module]
    preset: str = "paper"
    notes: dict[str, Any] = field(default_factory=dict)


def safe_torch_load(path: str | os.PathLike, extra_allowed: Iterable[type] = ()) -> Any:
    """Unpickle an official ``.pth``/``.pth.tar`` with ``weights_only=True`` on the CPU.

    Only tensors, plain Python containers and the classes in ``ALLOWED_GLOBALS`` (+
    ``extra_allowed``) are accepted; a file needing anything else raises ``WeightsError``
    naming the refused class.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    allowed = list(ALLOWED_GLOBALS) + list(extra_allowed)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path}: refused to unpickle it: it needs a class outside lumen's allow-list "
            f"({', '.join(c.__module__ + '.' + c.__qualname__ for c in allowed)}). "
            f"lumen never runs code from a checkpoint. Details: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({e})") from None


def find_state_dict(obj: Any, keys: Iterable[str] = ("state_dict", "model", "params")) -> dict:
    """The tensor dict inside an official checkpoint: ``obj`` itself if all its values are
    tensors, else the first of ``keys`` that holds one."""
    import torch

    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, Mapping):
        for k in keys:
            if k in obj and isinstance(obj[k], Mapping):
                return find_state_dict(obj[k], keys)
    raise WeightsError(f"no state dict found (looked for {', '.join(keys)})")


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict:
    """Remove a DataParallel-style ``prefix`` from every key that has it."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in sd.items()}


def load_strict(net: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """``net.load_state_dict(sd)`` with every key and shape required; a clear error otherwise."""
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if bad:
            parts.append(
                "shape mismatch: "
                + ", ".join(f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in bad[:3])
            )
        raise WeightsError(
            f"{what}: official keys do not fit lumen's paper preset: " + "; ".join(parts)
        )
    net.load_state_dict(dict(sd), strict=True)


def converter(method: str):
    try:
        target = CONVERTERS[method]
    except KeyError:
        have = ", ".join(sorted(CONVERTERS)) or "none yet"
        raise UsageError(f"no converter for method {method!r}; methods with one: {have}") from None
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


def convert(
    method: str, sources: list[str | os.PathLike], out: str | os.PathLike
) -> tuple[str, Converted]:
    """Convert official files of ``method`` into one lumen safetensors file at ``out``.

    Returns (sha256 of the written file, the converted nets and notes).
    """
    from lumen_cli.weights.checkpoint import save_nets, sha256_file

    paths = [Path(s) for s in sources]
    for p in paths:
        if not p.exists():
            raise UsageError(f"source not found: {p}")
    result: Converted = converter(method)(paths)
    files = [
        (q, q.relative_to(p.parent).as_posix())  # the path as given, for same-named files
        for p in paths
        for q in (sorted(p.rglob("*")) if p.is_dir() else [p])
        if q.is_file()
    ]
    provenance = {
        "converted_from": [
            {"file": q.name, "path": rel, "sha256": sha256_file(q)} for q, rel in files
        ],
        "preset": result.preset,
        **({"notes": result.notes} if result.notes else {}),
    }
    meta = {"lumen.preset": result.preset, "lumen.provenance": provenance}
    sha = save_nets(out, method, result.nets, metadata=meta)
    return sha, result
