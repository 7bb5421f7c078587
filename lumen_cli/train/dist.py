"""Distributed helpers: one process per device under ``torchrun`` (gloo on CPU, nccl on CUDA).

Without ``torchrun`` (no WORLD_SIZE in the environment) everything here is a no-op and the
training runs in one process. Only rank 0 writes files and validates.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as td
from torch import nn


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if active() else 0


def world() -> int:
    return td.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (if any).

    True when this call created the group (and so its caller should shut it down)."""
    if env_world() <= 1 or active():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    td.init_process_group(backend=backend)
    return True


@contextlib.contextmanager
def group(device: torch.device):
    """Inside: joined to torchrun's process group. On the way out the group is destroyed (if
    this joined it), after a barrier when the block ended normally: a process that exits with
    its gloo group alive can abort (SIGABRT) during interpreter shutdown, when gloo's worker
    threads release tensors after Python is gone (pytorch/pytorch PR 179291 describes it; CI
    saw rank 1 of the torchrun test end so)."""
    owned = init(device)
    try:
        yield
        if owned:
            barrier()
    finally:
        if owned:
            shutdown()


def local_device(requested: str | None) -> torch.device:
    """The device of this process: cuda:LOCAL_RANK under torchrun on GPUs, else the request."""
    if requested:
        dev = torch.device(requested)
    elif torch.cuda.is_available():
        dev = torch.device("cuda")
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return dev


def shutdown() -> None:
    if active():
        td.destroy_process_group()


def wrap(m: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
    """DistributedDataParallel around a trained net when distributed, the net itself if not."""
    if not active() or not any(p.requires_grad for p in m.parameters()):
        return m
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        m, device_ids=ids, find_unused_parameters=find_unused
    )


def barrier() -> None:
    if active():
        td.barrier()


def any_true(flag: bool) -> bool:
    """True on every rank when it is True on any rank (stop decisions stay in step)."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if td.get_backend() == "nccl":
        t = t.cuda()
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not active():
        return [obj]
    out = [None] * world()
    td.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]
