"""One training run of a method: its stages in order, in a run directory.

Layout of RUN_DIR::

    run.json             method, preset, settings (config file + --set), data, command, status
    log.jsonl            one JSON record per log interval / validation
    <stage>/last.pt      resume checkpoint (torch.save of state dicts; loaded weights_only)
    <stage>/best.pt      EMA weights at the best validation
    <stage>/final.pt     EMA weights once the stage finished (later stages and export use them)
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lumen_cli.errors import UsageError
from lumen_cli.train import config as C
from lumen_cli.train import dist
from lumen_cli.train.loop import StageContext, autocast_dtype, load_ckpt, seed_all, train_stage


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def method_class(method: str):
    from lumen_cli.pipelines import registry

    try:
        return registry.get(method).load_class()
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None


def read_run(out: Path) -> dict[str, Any]:
    return json.loads((Path(out) / "run.json").read_text())


def write_json(path: Path, obj: dict) -> None:
    from lumen_cli.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, default=str))


def build_run_nets(cls, settings: dict[str, Any]):
    """Fresh nets of the run's preset and overrides, initialised from the run's seed."""
    seed_all(int(settings.get("seed", 0)))
    return cls.build_nets(settings.get("preset"), settings.get("nets") or None)


def load_stage_weights(nets, stage, stage_dir: Path, which: str = "final") -> dict:
    """Load the EMA weights of ``stage``'s nets from final.pt / best.pt / last.pt."""
    ck = load_ckpt(stage_dir / f"{which}.pt")
    sd = ck["ema"]["nets"] if which == "last" else ck["ema"]
    for k in stage.trains:
        nets[k].load_state_dict(sd[k])
    return ck


def stages_for(cls, nets) -> list:
    """The method's stages that train nets this preset has (``paper`` has no ``tone`` net)."""
    return [s for s in cls.stages() if set(s.trains) <= set(nets)]


def init_from(nets, path: Path, method: str, message) -> set[str]:
    """Fine-tuning: load every net of the lumen weights file ``path`` whose arch and config
    match the run's net of the same name. Returns the names loaded; says what it skipped."""
    from lumen_cli.weights.checkpoint import load_nets

    m, loaded, _ = load_nets(path)
    if m != method:
        raise UsageError(f"--init {path}: holds weights of {m!r}, not {method!r}")
    done = set()
    for name, net in loaded.items():
        mine = nets.get(name)
        if mine is None or (net.lumen_arch, net.lumen_config) != (
            mine.lumen_arch,
            mine.lumen_config,
        ):
            message(f"--init: net {name!r} differs from this run's preset; not loaded")
            continue
        mine.load_state_dict(net.state_dict())
        done.add(name)
    message(f"--init: loaded {', '.join(sorted(done)) or 'nothing'} from {path}")
    return done


def train(
    method: str,
    data: Path,
    out: Path,
    *,
    val: Path | None = None,
    config: Path | None = None,
    sets: list[str] = (),
    resume: bool = False,
    max_steps: int | None = None,
    time_budget: str | None = None,
    stage: str | None = None,
    seed: int | None = None,
    threads: int | None = None,
    synthesize: bool = False,
    synth_from: Path | None = None,
    normal: Path | None = None,
    device: str | None = None,
    init: Path | None = None,
    progress: Callable[[str, int, int, dict], None] | None = None,
    message: Callable[[str], None] = lambda s: None,
    command: str = "",
) -> dict[str, Any]:
    """Train ``method`` on ``data`` into run dir ``out``. Returns a summary dict."""
    t0 = time.monotonic()
    budget = C.parse_duration(time_budget)
    if threads:
        torch.set_num_threads(int(threads))
    cls = method_class(method)
    stages = list(cls.stages())
    if not stages:
        raise UsageError(f"method {method!r} has no trainable stages")
    names = [s.name for s in stages]
    if stage is not None and stage not in names:
        raise UsageError(f"method {method} has no stage {stage!r}; stages: {', '.join(names)}")
    out = Path(out)
    new_settings = deep_merge(C.load_file(config), C.parse_sets(list(sets)))
    if seed is not None:
        new_settings["seed"] = seed
    if (out / "run.json").exists():
        info = read_run(out)
        if info["method"] != method:
            raise UsageError(f"{out} holds a run of {info['method']!r}, not {method!r}")
        if not resume and stage is None:
            raise UsageError(f"{out} already holds a run: add --resume, or use a new --out")
        settings = deep_merge(info["settings"], new_settings)
    else:
        info = {"method": method, "created": _now(), "stages": {}}
        settings = new_settings
    settings.setdefault("seed", 0)
    init = init or info.get("init")  # a resumed fine-tuning run keeps its starting weights
    try:
        run_cfg, per_stage, net_over = C.resolve(stages, settings, {})
    except ValueError as e:
        raise UsageError(str(e)) from None
    settings["preset"] = run_cfg.get("preset", cls.default_preset)

    dev = dist.local_device(device)
    with dist.group(dev):
        info.update(
            settings=settings,
            data=str(data),
            val=str(val) if val else None,
            init=str(Path(init).resolve()) if init else None,
            command=command,
            commands=[*info.get("commands", []), command],
            config=str(Path(config).resolve()) if config else info.get("config"),
            code=_code_commit(),
            synthesize=bool(synthesize),
            synth_from=str(synth_from) if synth_from else None,
            lumen_version=_version(),
            world_size=dist.world(),
        )
        main = dist.is_main()
        if main:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "run.json", info)
        log_path = out / "log.jsonl"

        def log(rec: dict) -> None:
            if main:
                with open(log_path, "a") as f:
                    f.write(json.dumps({"t": round(time.time(), 3), **rec}, default=float) + "\n")

        nets = build_run_nets(cls, {**settings, "nets": net_over})
        inited = init_from(nets, Path(init), method, message) if init else set()
        for m in nets.values():
            m.to(dev)
        stages = stages_for(cls, nets)
        names = [s.name for s in stages]
        val_pairs = _val_pairs(val)
        todo = [s for s in stages if stage is None or s.name == stage]
        summary: dict[str, Any] = {"run_dir": str(out), "stages": {}, "world_size": dist.world()}
        for st in stages:
            sdir = out / st.name
            cfg = per_stage[st.name]
            if st not in todo:
                if (sdir / "final.pt").exists():
                    load_stage_weights(nets, st, sdir)
                elif stage is not None and names.index(st.name) < names.index(stage):
                    need = set(st.trains) & set(next(s for s in stages if s.name == stage).uses)
                    need -= inited
                    if need:
                        raise UsageError(
                            f"stage {stage} uses {sorted(need)}, trained by stage {st.name}, which "
                            f"has not finished in {out}; run --stage {st.name} first"
                        )
                continue
            if stage is None and (sdir / "final.pt").exists():
                load_stage_weights(nets, st, sdir)
                message(f"stage {st.name}: already finished, using its weights")
                summary["stages"][st.name] = info["stages"].get(st.name, {"complete": True})
                continue
            has_last = (sdir / "last.pt").exists()
            if has_last and not resume:
                raise UsageError(f"{sdir} has a checkpoint: add --resume, or use a new --out")
            if (sdir / "final.pt").exists() and resume:
                load_stage_weights(nets, st, sdir)
                summary["stages"][st.name] = info["stages"].get(st.name, {"complete": True})
                continue
            dataset = _dataset(st, cfg, data, normal, synthesize, synth_from, int(settings["seed"]))
            amp = autocast_dtype(cfg["precision"], dev)
            validate = None
            if val_pairs:
                from lumen_cli.train.validate import make_validator

                validate = make_validator(cls, st, cfg, nets, val_pairs, dev, amp)
            message(
                f"stage {st.name}: {cfg['steps']} steps, batch {cfg['batch_size']}, "
                f"crop {cfg['crop']}, lr {cfg['lr']}, {len(dataset)} images, "
                f"precision {'bf16' if amp else 'fp32'}, {dist.world()} process(es)"
            )
            ctx = StageContext(
                stage=st,
                cfg=cfg,
                nets=nets,
                device=dev,
                dataset=dataset,
                stage_dir=sdir,
                seed=int(settings["seed"]) * 7 + names.index(st.name),
                log=log,
                validate=validate,
                progress=progress,
                max_steps=max_steps,
                deadline=None if budget is None else t0 + budget,
                resume=resume and has_last,
            )
            res, ema = train_stage(ctx)
            rec = {
                "step": res.step,
                "total": res.total,
                "complete": res.complete,
                "reason": res.reason,
                "best": res.best,
                "last_val": res.last_val,
            }
            info["stages"][st.name] = rec
            summary["stages"][st.name] = rec
            if res.complete:
                for k in st.trains:  # later stages (and export) use the EMA weights
                    nets[k].load_state_dict(ema.nets[k].state_dict())
                if main:
                    torch.save(
                        {
                            "stage": st.name,
                            "step": res.step,
                            "ema": ema.state_dict()["nets"],
                            "best": res.best,
                            "last_val": res.last_val,
                        },
                        sdir / "final.pt",
                    )
            if main:
                write_json(out / "run.json", info)
            dist.barrier()
            if not res.complete:
                summary["stopped"] = res.reason
                break
        summary["seconds"] = round(time.monotonic() - t0, 1)
        return summary


def _val_pairs(val: Path | None):
    if val is None:
        return []
    from lumen_cli.train.data import paired_files

    try:
        return paired_files(val)
    except FileNotFoundError as e:
        raise UsageError(f"--val: {e}") from None


def _dataset(st, cfg, data, normal, synthesize, synth_from, seed):
    from lumen_cli.train import data as D

    aug = D.Augment(cfg["crop"], cfg["resize"], bool(cfg["flips"]), bool(cfg["rot90"]))
    try:
        if st.data == "paired":
            synth, ratio = None, 0.0
            if synthesize or synth_from:
                from lumen_cli.train.synth import synthesize_low

                ratio = cfg["synth_ratio"]
                synth, ratio = synthesize_low, 0.5 if ratio is None else float(ratio)
            pairs = D.paired_files(data) if data is not None else []
            if synth_from:  # normal-light photos become pairs (low synthesized on the fly)
                pairs += [(p, p) for p in D.list_images(synth_from)]
            return D.PairedDataset(
                pairs,
                aug,
                seed,
                synth=synth,
                synth_ratio=ratio,
                synth_only={p for p, q in pairs if p == q},
            )
        lows, normals = D.unpaired_files(data, normal)
        return D.UnpairedDataset(lows, normals, aug, seed)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _code_commit() -> str | None:
    """The git commit of the lumen checkout that runs (None outside a git checkout)."""
    import subprocess

    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


def _version() -> str:
    from lumen_cli import __version__

    return __version__
