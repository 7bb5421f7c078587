"""Checkpoint files: one safetensors file per method holding all of its nets.

Layout (format "1"):

- tensors: ``"<net>.<param>"`` for every entry of each net's ``state_dict()`` (parameters and
  persistent buffers), stored contiguous on the CPU in the dtype the net holds them;
- metadata (all str): ``lumen.format="1"``, ``lumen.method=<method>``,
  ``lumen.nets=<json {net: {"arch": arch, "config": {...}}}>``, optionally
  ``lumen.provenance=<json>`` and any further keys the caller adds.

Because the arch name and constructor config of each net travel in the file, a checkpoint is
self-describing: ``load_nets`` rebuilds the nets through ``lumen_cli.nets.registry.build_net``
without any other knowledge. Files are never unpickled (no ``torch.load``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumen_cli.errors import WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "1"
KEY_FORMAT = "lumen.format"
KEY_METHOD = "lumen.method"
KEY_NETS = "lumen.nets"
KEY_PROVENANCE = "lumen.provenance"
_RESERVED = (KEY_FORMAT, KEY_METHOD, KEY_NETS)
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# -- writing ------------------------------------------------------------------------------
def save_nets(
    path: str | os.PathLike,
    method: str,
    nets: dict[str, nn.Module],
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write ``nets`` (built by ``build_net``) to ``path`` atomically; return the file's sha256.

    ``metadata`` adds str keys to the file header; a dict value (e.g. for
    ``"lumen.provenance"``) is stored as JSON. The reserved keys ``lumen.format``,
    ``lumen.method`` and ``lumen.nets`` are written by this function and may not be given.
    """
    from safetensors.torch import save_file

    if not method:
        raise ValueError("save_nets: method name is empty")
    if not nets:
        raise ValueError("save_nets: no nets to save")
    described: dict[str, dict[str, Any]] = {}
    tensors: dict[str, torch.Tensor] = {}
    seen_ptrs: set[int] = set()
    for name, net in nets.items():
        if not name or "." in name:
            raise ValueError(f"save_nets: net name {name!r} must be non-empty without dots")
        arch = getattr(net, "lumen_arch", None)
        config = getattr(net, "lumen_config", None)
        if arch is None or config is None:
            raise ValueError(
                f"save_nets: net {name!r} ({type(net).__name__}) has no .lumen_arch/.lumen_config; "
                "build it with lumen_cli.nets.registry.build_net(arch, config)"
            )
        try:
            config_json = json.loads(json.dumps(config))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"save_nets: config of net {name!r} is not JSON-serialisable: {e}"
            ) from e
        described[name] = {"arch": arch, "config": config_json}
        for key, t in net.state_dict().items():
            t = t.detach().to("cpu").contiguous()
            if t.numel() and t.data_ptr() in seen_ptrs:  # tied weights: safetensors wants copies
                t = t.clone()
            if t.numel():
                seen_ptrs.add(t.data_ptr())
            tensors[f"{name}.{key}"] = t

    meta: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if key in _RESERVED:
            raise ValueError(f"save_nets: metadata key {key!r} is written by lumen itself")
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    meta.update(
        {
            KEY_FORMAT: FORMAT,
            KEY_METHOD: method,
            KEY_NETS: json.dumps(described, sort_keys=True),
        }
    )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from lumen_cli.atomic import atomic_path

    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
        digest = sha256_file(tmp)
    return digest


# -- reading ------------------------------------------------------------------------------
def read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header of ``path``, read without torch or the tensor data."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    size = path.stat().st_size
    not_st = (
        f"{path} is not a safetensors file; lumen reads only .safetensors checkpoints "
        "written by `lumen train export` (never pickled .pt/.pth files)"
    )
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise WeightsError(not_st)
        (n,) = struct.unpack("<Q", raw)
        if n == 0 or n > _MAX_HEADER or n + 8 > size:
            raise WeightsError(not_st)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError):
            raise WeightsError(not_st) from None
    if not isinstance(header, dict):
        raise WeightsError(not_st)
    return header


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The str->str metadata of a safetensors file (no tensors are loaded, torch not imported).

    Raises WeightsError when the file is missing or not a safetensors file. It does not
    require lumen keys; use ``check_lumen_file`` for that.
    """
    meta = read_header(Path(path)).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def check_lumen_file(path: str | os.PathLike) -> dict[str, str]:
    """Metadata of a lumen checkpoint; WeightsError if the file was not written by lumen."""
    meta = read_metadata(path)
    if KEY_FORMAT not in meta or KEY_NETS not in meta or KEY_METHOD not in meta:
        raise WeightsError(
            f"{path} has no lumen metadata: this file was not written by `lumen train export` "
            "(lumen needs the nets' arch and config stored in the safetensors header)"
        )
    if meta[KEY_FORMAT] != FORMAT:
        raise WeightsError(
            f"{path} uses lumen checkpoint format {meta[KEY_FORMAT]!r}; this lumen reads "
            f"format {FORMAT!r}. Upgrade lumen or re-export the checkpoint."
        )
    try:
        nets = json.loads(meta[KEY_NETS])
        ok = isinstance(nets, dict) and all(
            isinstance(v, dict) and "arch" in v and isinstance(v.get("config"), dict)
            for v in nets.values()
        )
    except ValueError:
        ok = False
    if not ok:
        raise WeightsError(f"{path}: the lumen.nets metadata is malformed")
    return meta


def describe_nets(meta: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{net: {"arch": str, "config": dict}}`` from checked lumen metadata."""
    return json.loads(meta[KEY_NETS])


# float dtype -> (same-size int dtype, exponent mask, mantissa mask)
_FLOAT_BITS = {
    "float16": ("int16", 0x7C00, 0x03FF),
    "bfloat16": ("int16", 0x7F80, 0x007F),
    "float32": ("int32", 0x7F800000, 0x007FFFFF),
    "float64": ("int64", 0x7FF0000000000000, 0x000FFFFFFFFFFFFF),
}


def flush_denormals_(t: torch.Tensor) -> int:
    """Set subnormal entries of a float tensor to zero in place; return how many there were.

    Subnormals are numerically irrelevant for these nets but can make CPU kernels many times
    slower (one published checkpoint ran 25x slower until flushed). They are found from the
    bit pattern (exponent bits all zero, mantissa not), because once
    ``torch.set_flush_denormal(True)`` is on, float comparisons treat them as zero already.
    """
    import torch

    spec = _FLOAT_BITS.get(str(t.dtype).removeprefix("torch."))
    if spec is None or t.numel() == 0:
        return 0
    int_dtype, exp_mask, mant_mask = spec
    bits = t.view(getattr(torch, int_dtype))
    mask = ((bits & exp_mask) == 0) & ((bits & mant_mask) != 0)
    n = int(mask.sum())
    if n:
        bits.masked_fill_(mask, 0)
    return n


def load_nets(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[str, dict[str, nn.Module], dict[str, str]]:
    """Rebuild the nets stored in a lumen checkpoint: ``(method, {name: net}, metadata)``.

    Each net is built with ``build_net(arch, config)`` from the file's metadata, loaded with
    ``load_state_dict(strict=True)``, put in eval mode and moved to ``device``. Subnormal
    floats are flushed to zero, and on CPU ``torch.set_flush_denormal(True)`` is turned on.
    ``metadata`` is the file's raw str->str header metadata.
    """
    import torch
    from safetensors import safe_open

    from lumen_cli.nets.registry import build_net

    path = Path(path)
    meta = check_lumen_file(path)
    method = meta[KEY_METHOD]
    described = describe_nets(meta)

    state: dict[str, dict[str, torch.Tensor]] = {name: {} for name in described}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                net_name, _, param = key.partition(".")
                if net_name not in state or not param:
                    raise WeightsError(
                        f"{path}: tensor {key!r} belongs to no net listed in its metadata "
                        f"({', '.join(described)})"
                    )
                t = f.get_tensor(key)
                flush_denormals_(t)
                state[net_name][param] = t
    except WeightsError:
        raise
    except Exception as e:  # safetensors raises its own error type for corrupt data
        raise WeightsError(f"{path}: cannot read tensors ({e})") from e

    if torch.device(device).type == "cpu":
        torch.set_flush_denormal(True)

    nets: dict[str, nn.Module] = {}
    for name, desc in described.items():
        try:
            net = build_net(desc["arch"], desc["config"])
        except ValueError as e:  # unknown arch
            raise WeightsError(f"{path}: net {name!r}: {e}. Is this lumen too old?") from e
        except TypeError as e:  # config does not fit the class
            raise WeightsError(f"{path}: net {name!r} ({desc['arch']}): bad config: {e}") from e
        try:
            net.load_state_dict(state[name], strict=True)
        except RuntimeError as e:
            raise WeightsError(
                f"{path}: the weights of net {name!r} ({desc['arch']}) do not fit its "
                f"architecture:\n{e}"
            ) from e
        with torch.no_grad():  # values were cast into the net's dtypes: flush once more
            for t in net.state_dict().values():
                flush_denormals_(t)
        nets[name] = net.eval().to(device)
    return method, nets, meta
