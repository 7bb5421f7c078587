"""Training settings: engine defaults < stage defaults < config file < ``--set``.

A config file (TOML) holds global keys, per-stage tables and net overrides::

    preset = "lite"            # which preset of the method's nets
    lr = 2e-4                  # applies to every stage
    [restore]                  # a table named after a stage: only that stage
    lr = 1e-4
    steps = 4000
    [nets.decom]               # constructor overrides of one net
    width = 32

``--set key=value`` does the same from the command line: ``--set lr=1e-4``,
``--set restore.lr=1e-4``, ``--set nets.decom.width=32``, ``--set preset=paper``. Values are
read as TOML (numbers, true/false, "strings", [lists]); anything else is taken as a string.
Per-stage values beat global ones; ``--set`` beats the file at the same level.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import tomllib

ENGINE_DEFAULTS: dict[str, Any] = {
    "steps": 1000,  # optimizer steps of the stage (the LR schedule spans them)
    "batch_size": 8,
    "lr": 2e-4,
    "min_lr_ratio": 0.01,  # cosine decays to lr * min_lr_ratio
    "warmup": 100,  # linear warm-up steps
    "weight_decay": 1e-4,
    "betas": [0.9, 0.99],
    "grad_clip": 1.0,  # max global grad norm (0: off)
    "ema": 0.999,  # EMA decay of weights (0: off, EMA == weights)
    "crop": 128,  # random crop size (none: whole images)
    "resize": None,  # downscale whole images to this short side first
    "flips": True,
    "rot90": True,
    "num_workers": 0,
    "precision": "auto",  # auto | bf16 | fp32 (auto: bf16 on CPUs with AMX/avx512_bf16)
    "log_every": 10,
    "ckpt_every": 250,  # resume checkpoint every N steps
    "val_every": 250,  # validation every N steps (0: only at the end)
    "val_crop": 256,  # center crop size for the stage validation loss
    "val_limit": 20,  # val images used
    "val_steps": None,  # sampling steps of full-pipeline validation (None: method default)
    "ddp_find_unused": False,  # DDP: allow trained nets with parameters a loss leaves unused
    "synth_ratio": None,  # fraction of synthesized inputs with --synthesize (None: 0.5)
    "loss_args": {},  # keyword arguments of the stage's loss, e.g. joint.loss_args.noise_p=0
}
GLOBAL_ONLY = {"preset", "seed"}


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text.lower() in ("none", "null"):
            return None
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    """["a=1", "restore.lr=1e-4", "nets.decom.width=8"] -> nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts or not all(re.fullmatch(r"[A-Za-z0-9_\-]+", p) for p in parts):
            raise ValueError(f"--set: bad key {key!r}")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise ValueError(f"--set: {key!r} conflicts with an earlier value")
        d[parts[-1]] = parse_value(value.strip())
    return out


def load_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    cfg.pop("recipe", None)  # a recipe's run flags (see ``read_recipe``), not settings
    return cfg


RECIPE_FLAGS = ("method", "data", "val", "normal", "synthesize", "synth_from", "seed", "init")


def read_recipe(path: Path) -> dict[str, Any]:
    """The ``[recipe]`` table of a recipe file ``recipes/<weights-name>.toml``.

    A recipe is a ``--config`` file (settings per stage) plus a ``[recipe]`` table with the run
    flags that rebuild a shipped weight file from scratch: ``method``, ``data``, ``val``,
    ``normal``, ``synthesize``, ``synth_from``, ``seed`` (and ``init`` only for a declared
    fine-tune). Relative paths are taken from the folder above ``recipes/`` (the repository
    root). Returns those flags with paths made absolute.
    """
    with open(path, "rb") as f:
        table = tomllib.load(f).get("recipe")
    if not isinstance(table, dict) or "method" not in table:
        raise ValueError(f"{path}: a recipe needs a [recipe] table with at least `method`")
    unknown = set(table) - set(RECIPE_FLAGS) - {"name", "description"}
    if unknown:
        raise ValueError(f"{path}: unknown [recipe] keys {sorted(unknown)}; know {RECIPE_FLAGS}")
    root = Path(path).resolve().parent.parent
    out = dict(table)
    for k in ("data", "val", "normal", "synth_from", "init"):
        if out.get(k):
            out[k] = (root / out[k]).resolve()
    return out


def _split(cfg: dict[str, Any], stage_names: list[str]):
    glob, per_stage, nets = {}, {}, {}
    for k, v in cfg.items():
        if k == "nets":
            nets = v
        elif k in stage_names and isinstance(v, dict):
            per_stage[k] = v
        elif isinstance(v, dict):
            raise ValueError(f"unknown config table [{k}]; stages are {stage_names}, or [nets.*]")
        else:
            glob[k] = v
    return glob, per_stage, nets


def resolve(
    stages: list, file_cfg: dict[str, Any], set_cfg: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict]]:
    """-> (run-level settings, {stage: settings}, {net: constructor overrides})."""
    names = [s.name for s in stages]
    fg, fs, fn = _split(file_cfg, names)
    sg, ss, sn = _split(set_cfg, names)
    glob = {**fg, **sg}
    run = {k: glob.pop(k) for k in list(glob) if k in GLOBAL_ONLY}
    nets: dict[str, dict] = {}
    for src in (fn, sn):
        for net, over in src.items():
            nets.setdefault(net, {}).update(over)
    known_any = set(ENGINE_DEFAULTS).union(*(s.defaults for s in stages))
    if set(glob) - known_any:
        raise ValueError(f"unknown setting(s) {sorted(set(glob) - known_any)}")
    per: dict[str, dict[str, Any]] = {}
    for st in stages:
        known = set(ENGINE_DEFAULTS) | set(st.defaults)
        own = {**fs.get(st.name, {}), **ss.get(st.name, {})}
        if set(own) - known:
            raise ValueError(f"stage {st.name}: unknown setting(s) {sorted(set(own) - known)}")
        g = {k: v for k, v in glob.items() if k in known}  # global keys a stage knows
        per[st.name] = {**ENGINE_DEFAULTS, **st.defaults, **g, **own}
        _check_loss_args(st, per[st.name]["loss_args"])
    return run, per, nets


def _check_loss_args(st, args) -> None:
    """loss_args must be a table of keyword arguments that the stage's loss accepts."""
    if not isinstance(args, dict):
        raise ValueError(f"stage {st.name}: loss_args must be a table, e.g. {{noise_p = 0.1}}")
    if not args:
        return
    params = inspect.signature(st.loss).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = list(params)[3:]
    bad = sorted(set(args) - set(names))
    if bad:
        raise ValueError(
            f"stage {st.name}: its loss takes no argument(s) {bad}; it takes {names or 'none'}"
        )


_DUR = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)")


def parse_duration(text: str | None) -> float | None:
    """'90m', '1h30m', '45s', '2h', '600' (seconds) -> seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    if not t or _DUR.sub("", t).strip():
        raise ValueError(f"bad duration {text!r}; use e.g. 90m, 1h30m, 45s")
    mult = {"h": 3600, "m": 60, "s": 1, "": 1}
    return sum(float(n) * mult[u] for n, u in _DUR.findall(t))
