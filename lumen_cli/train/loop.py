"""The optimisation loop of one training stage.

AdamW, linear warm-up then cosine decay, global grad-norm clipping, an EMA of the trained
nets, bf16 autocast where the hardware has it, resume checkpoints that restore everything
(weights, EMA, optimizer, scheduler, step, python/numpy/torch RNG states; the data stream
position is a function of the step), clean stops on ``--max-steps``, ``--time-budget`` and
Ctrl-C. Runs under ``torchrun`` with DistributedDataParallel (only rank 0 writes).
"""

from __future__ import annotations

import copy
import math
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lumen_cli.train import dist
from lumen_cli.train.stage import Stage


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The training autocast dtype (``devices.resolve_precision`` with training=True), None
    for plain fp32."""
    from lumen_cli.devices import resolve_precision

    dtype = resolve_precision(precision, device, training=True)
    return None if dtype is torch.float32 else dtype


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the base LR at optimizer step ``step`` (0-based).

    The warm-up is capped at a fifth of the stage, so short runs still reach the peak LR."""
    warmup = min(warmup, total // 5)
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


class EMA:
    """Exponential moving average of nets' float parameters and buffers.

    Decay ramps up as min(decay, (1+n)/(10+n)) so early averages are not dominated by the init.
    """

    def __init__(self, nets: dict[str, nn.Module], decay: float):
        self.decay = decay
        self.nets = {
            k: copy.deepcopy(_unwrap(m)).eval().requires_grad_(False) for k, m in nets.items()
        }
        self.updates = 0

    @torch.no_grad()
    def update(self, nets: dict[str, nn.Module]) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.decay > 0 else 0.0
        for k, m in nets.items():
            src = _unwrap(m).state_dict()
            for name, e in self.nets[k].state_dict().items():
                s = src[name]
                if e.is_floating_point():
                    e.mul_(d).add_(s.detach(), alpha=1 - d)
                else:
                    e.copy_(s)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "nets": {k: m.state_dict() for k, m in self.nets.items()}}

    def load_state_dict(self, sd: dict) -> None:
        self.updates = int(sd["updates"])
        for k, m in self.nets.items():
            m.load_state_dict(sd["nets"][k])


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as plain Python data (lists of ints)."""
    np_state = np.random.get_state()
    st = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        st["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return st


def set_rng_state(st: dict) -> None:
    random.setstate(_tuplify(st["python"]))
    n = st["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    torch.set_rng_state(torch.tensor(st["torch"], dtype=torch.uint8))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in st["cuda"]])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list | tuple) else x


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class StopFlag:
    """First Ctrl-C asks the loop to stop at the next step boundary; a second one aborts."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


@dataclass
class StageResult:
    name: str
    step: int  # optimizer steps done
    total: int  # steps configured
    complete: bool
    reason: str  # "done" | "max-steps" | "time-budget" | "interrupted"
    best: dict[str, Any] = field(default_factory=dict)
    last_val: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageContext:
    """What the loop needs besides the stage; built by ``lumen_cli.train.runner``."""

    stage: Stage
    cfg: dict[str, Any]
    nets: dict[str, nn.Module]  # every net of the method, on ``device``
    device: torch.device
    dataset: torch.utils.data.Dataset
    stage_dir: Path
    seed: int
    log: Callable[[dict], None]
    validate: Callable[[dict[str, nn.Module], int], dict[str, Any]] | None = None
    progress: Callable[[str, int, int, dict], None] | None = None
    max_steps: int | None = None
    deadline: float | None = None  # time.monotonic() value to stop at
    resume: bool = False


def _save(path: Path, obj: dict) -> None:
    from lumen_cli.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_ckpt(path: Path, device="cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def train_stage(ctx: StageContext) -> tuple[StageResult, EMA]:
    st, cfg, dev = ctx.stage, ctx.cfg, ctx.device
    total = int(cfg["steps"])
    trained = {k: ctx.nets[k] for k in st.trains}
    for k, m in ctx.nets.items():
        m.requires_grad_(k in st.trains)
        m.train(k in st.trains)
    params = [p for m in trained.values() for p in m.parameters()]
    opt = torch.optim.AdamW(
        params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, int(cfg["warmup"]), total, float(cfg["min_lr_ratio"]))
    )
    ema = EMA(trained, float(cfg["ema"]))
    step, best, last_val = 0, {}, {}
    last = ctx.stage_dir / "last.pt"
    ck = None
    if ctx.resume and last.exists():
        ck = load_ckpt(last, dev)
        for k, m in trained.items():
            m.load_state_dict(ck["nets"][k])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        step, best, last_val = int(ck["step"]), dict(ck["best"]), dict(ck.get("last_val", {}))

    find_unused = bool(cfg.get("ddp_find_unused", False))
    wrapped = {k: dist.wrap(m, dev, find_unused) for k, m in trained.items()}
    call_nets = {**ctx.nets, **wrapped}
    loader = _loader(ctx, step)
    batches = iter(loader)  # creating the iterator draws from torch's RNG: restore after it
    if ck is not None:
        set_rng_state(ck["rng"][min(dist.rank(), len(ck["rng"]) - 1)])
    else:
        seed_all(ctx.seed * 1000 + dist.rank())
    amp = autocast_dtype(cfg["precision"], dev)

    def checkpoint(reason: str) -> None:
        rngs = dist.gather_objects(rng_state())
        if dist.is_main():
            ctx.stage_dir.mkdir(parents=True, exist_ok=True)
            _save(
                last,
                {
                    "format": 1,
                    "stage": st.name,
                    "step": step,
                    "total": total,
                    "reason": reason,
                    "nets": {k: _unwrap(m).state_dict() for k, m in trained.items()},
                    "ema": ema.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "rng": rngs,
                    "best": best,
                    "last_val": last_val,
                    "cfg": {k: v for k, v in cfg.items() if not callable(v)},
                },
            )

    def run_validation() -> None:
        nonlocal best, last_val
        if ctx.validate is None:
            return
        with torch.random.fork_rng(devices=[]):
            res = ctx.validate(ema.nets, step) if dist.is_main() else {}
        for m in trained.values():  # validation may switch modes; restore training mode
            m.train()
        res = dist.broadcast_object(res)
        if not res:
            return
        last_val = res
        ctx.log({"stage": st.name, "step": step, "kind": "val", **res})
        key, higher = ("psnr", True) if "psnr" in res else ("val_loss", False)
        if key in res and (not best or (res[key] > best[key] if higher else res[key] < best[key])):
            best = {**res, "step": step, "key": key}
            if dist.is_main():
                _save(
                    ctx.stage_dir / "best.pt",
                    {"step": step, "metrics": res, "ema": ema.state_dict()["nets"]},
                )

    reason, acc, n_acc = "done", {}, 0
    val_every, ckpt_every = int(cfg["val_every"]), int(cfg["ckpt_every"])
    loss_args = dict(cfg.get("loss_args") or {})
    with StopFlag() as stop:
        while step < total:
            if ctx.max_steps is not None and step >= ctx.max_steps:
                reason = "max-steps"
                break
            batch = {k: v.to(dev, non_blocking=True) for k, v in next(batches).items()}
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss, logs = st.loss(call_nets, batch, step, **loss_args)
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            gnorm = None
            if cfg["grad_clip"] and cfg["grad_clip"] > 0:
                gnorm = float(nn.utils.clip_grad_norm_(params, float(cfg["grad_clip"])))
            opt.step()
            sched.step()
            ema.update(trained)
            step += 1
            for k, v in {"loss": float(loss.detach()), **logs}.items():
                acc[k] = acc.get(k, 0.0) + float(v)
            n_acc += 1
            if step % int(cfg["log_every"]) == 0 or step == total:
                rec = {k: v / n_acc for k, v in acc.items()}
                rec.update(lr=sched.get_last_lr()[0], **({"gnorm": gnorm} if gnorm else {}))
                ctx.log({"stage": st.name, "step": step, "kind": "train", **rec})
                if ctx.progress:
                    ctx.progress(st.name, step, total, rec)
                acc, n_acc = {}, 0
            if (val_every > 0 and step % val_every == 0) or step == total:
                run_validation()
            if step % ckpt_every == 0 and step < total:
                checkpoint("periodic")
            over = ctx.deadline is not None and time.monotonic() > ctx.deadline
            flag = dist.any_true(stop.requested or over)
            if flag and step < total:
                reason = "interrupted" if stop.requested else "time-budget"
                break
    checkpoint(reason)
    return StageResult(st.name, step, total, step >= total, reason, best, last_val), ema


def _loader(ctx: StageContext, start_step: int):
    from lumen_cli.train.data import make_loader

    return make_loader(
        ctx.dataset,
        int(ctx.cfg["batch_size"]),
        start_step,
        int(ctx.cfg["num_workers"]),
        dist.rank(),
        dist.world(),
    )
