"""Device and precision choice, random generators and CPU speed settings.

``auto`` picks CUDA, then MPS, then the CPU. A device asked for by name that is not there is an
error (``DeviceError``), never a silent fallback.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import threading

import torch

from lumen_cli.errors import DeviceError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(spec: str = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> torch.device (checked to exist)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {spec}: no CUDA device is available on this machine "
                "(torch.cuda.is_available() is False). Use --device cpu or auto."
            )
        idx = int(m.group(1) or 0)
        if idx >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})."
            )
        return torch.device("cuda", idx)
    if spec == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: Apple's MPS backend is not available here.")
        return torch.device("mps")
    raise DeviceError(f"--device {spec!r}: expected auto, cpu, cuda, cuda:N or mps.")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True where the CPU runs bf16 matrix work natively (AMX or AVX512-BF16)."""
    flags = cpu_flags()
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def resolve_precision(precision: str, device: torch.device, training: bool = False) -> torch.dtype:
    """'auto'|'fp32'|'bf16'|'fp16' -> the autocast dtype for ``device`` (float32: no autocast).

    The one precision policy of lumen. Inference: 'auto' is bf16 on CUDA with bf16 (else fp16),
    fp16 on MPS, bf16 on CPUs with native bf16 (AMX / AVX512-BF16), else fp32. ``training``:
    never fp16 (no loss scaling in the training engine): 'auto' falls back to fp32 where
    inference would use fp16, and an explicit 'fp16' is an error."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise DeviceError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        dtype = _DTYPES[precision]
        if dtype is torch.float16 and (training or device.type == "cpu"):
            where = "for training" if training else "on the CPU"
            raise DeviceError(f"--precision fp16 is not supported {where}; use bf16 or fp32.")
        return dtype
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif device.type == "mps":
        dtype = torch.float16
    else:
        dtype = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    return torch.float32 if training and dtype is torch.float16 else dtype


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast context for ``dtype`` on ``device`` (a no-op for float32)."""
    if dtype is torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed draws the same noise whatever the compute device."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def randn(shape, generator: torch.Generator, device: torch.device, dtype=torch.float32):
    """Standard normal noise drawn on the CPU from ``generator``, then moved to ``device``."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's container in cores (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or None when unlimited or unknown."""
    try:
        with open(os.path.join(root, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
            quota_us = int(f.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def default_threads() -> int:
    """The CPU threads lumen uses when none are asked for: torch's default (one per physical
    core), but no more than the CPUs this process may run on (affinity) and its container's
    quota (rounded up), since threads beyond those wait for each other at every operation."""
    n = torch.get_num_threads()
    if hasattr(os, "sched_getaffinity"):
        n = min(n, len(os.sched_getaffinity(0)))
    limit = cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.ceil(limit)))
    return max(1, n)


def configure_cpu(threads: int | None = None) -> None:
    """Flush subnormal floats to zero (they made a peer model 25x slower on AVX-512 CPUs with no
    change in output) and set thread counts: ``threads``, else $LUMEN_THREADS, else
    ``default_threads()`` (one per physical core this process may use)."""
    torch.set_flush_denormal(True)
    threads = threads or int(os.environ.get("LUMEN_THREADS", "0") or 0) or default_threads()
    torch.set_num_threads(threads)  # also in threads that share the count (OpenMP's is per thread)


MAX_TILE_WORKERS = 2  # tiles of one image run at once on a CPU (chosen in benchmarks/NOTES.md)


def tile_workers(device: torch.device, tiles: int) -> int:
    """How many tiles of one image run at once: on a CPU, up to MAX_TILE_WORKERS (or
    $LUMEN_TILE_WORKERS; 1: one after another) and no more than the threads, the tiles after
    the first, and 1 on a GPU, where one tile already fills the device. Each worker then runs
    its operations on threads / workers threads: the small feature maps of a tile's U-Nets
    keep two threads of one operation waiting for each other, two tiles do not. Called from a
    thread other than the main one (an application running lumen on threads of its own): 1,
    since the workers change torch's process-wide thread count while they run."""
    if device.type != "cpu" or threading.current_thread() is not threading.main_thread():
        return 1
    limit = int(os.environ.get("LUMEN_TILE_WORKERS", "0") or 0) or MAX_TILE_WORKERS
    return max(1, min(limit, torch.get_num_threads(), tiles - 1))


def describe(device: torch.device, dtype: torch.dtype) -> str:
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    prec = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    return f"{name}, {prec}"
