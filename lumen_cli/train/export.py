"""Export a run's EMA weights as one lumen safetensors file, with provenance and a manifest entry.

Per stage the weights come from ``final.pt`` (stage finished), or with ``best=True`` from
``best.pt`` where validation kept one; a stage stopped early contributes the EMA of its last
checkpoint (and the export says so). Nets no stage trained keep the run's seeded init.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from lumen_cli.errors import UsageError
from lumen_cli.train.runner import (
    build_run_nets,
    load_stage_weights,
    method_class,
    read_run,
    stages_for,
)


def export_run(
    run_dir: Path,
    output: Path,
    *,
    best: bool = False,
    license: str = "MIT",
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Write ``output`` (.safetensors). Returns {"sha256", "manifest", "notes", "provenance"}.

    dtype "fp16" stores floating tensors in half precision (half the file size; loaders cast
    back to the nets' float32 parameters)."""
    from lumen_cli.weights.checkpoint import save_nets, sha256_file

    run_dir, output = Path(run_dir), Path(output)
    if not (run_dir / "run.json").exists():
        raise UsageError(f"{run_dir} is not a training run directory (no run.json)")
    info = read_run(run_dir)
    cls = method_class(info["method"])
    settings = info["settings"]
    nets = build_run_nets(cls, settings)
    notes, steps, val = [], {}, {}
    init, inited = info.get("init"), set()
    if init:  # fine-tuned run: nets no stage of this run trained come from the --init file
        from lumen_cli.train.runner import init_from

        if not Path(init).exists():
            raise UsageError(f"{run_dir} was started from --init {init}, which no longer exists")
        inited = init_from(nets, Path(init), info["method"], notes.append)
    for st in stages_for(cls, nets):
        sdir = run_dir / st.name
        order = ["best", "final", "last"] if best else ["final", "last"]
        which = next((w for w in order if (sdir / f"{w}.pt").exists()), None)
        if which is None:
            if set(st.trains) <= inited:
                continue
            notes.append(f"stage {st.name} never ran: nets {list(st.trains)} are untrained")
            continue
        ck = load_stage_weights(nets, st, sdir, which)
        rec = info.get("stages", {}).get(st.name, {})
        steps[st.name] = int(ck.get("step", rec.get("step", 0)))
        if which == "last":
            notes.append(f"stage {st.name} stopped at step {steps[st.name]} of {rec.get('total')}")
        # final weights: the metrics of their own (last) validation, never the best checkpoint's
        metrics = ck.get("metrics") if which == "best" else rec.get("last_val") or rec.get("best")
        if metrics:
            val[st.name] = {
                k: round(float(v), 4)
                for k, v in metrics.items()
                if k in ("psnr", "ssim", "val_loss")
            }
    headline = _headline(val)
    init_sha = sha256_file(init) if init else None
    prov = {
        "recipe": _repo_relative(info.get("config")),  # recipes/NAME.toml: rebuilds the file
        "parent_sha256": init_sha,  # the file fine-tuned from (None: trained from scratch)
        "code": info.get("code"),  # git commit of the training code
        "command": info.get("command", ""),
        "commands": info.get("commands", []),
        "init": init,
        "init_sha256": init_sha,
        "data": info.get("data"),
        "val_data": info.get("val"),
        "synthesize": info.get("synthesize", False),
        "preset": settings.get("preset"),
        "settings": settings,
        "steps": sum(steps.values()),
        "stage_steps": steps,
        "val": headline,
        "stage_val": val,
        "weights": "best" if best else "final EMA",
        "dtype": dtype,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "lumen_version": info.get("lumen_version"),
        "notes": notes,
    }
    if dtype not in ("fp32", "fp16"):
        raise UsageError(f"--dtype {dtype!r}: expected fp32 or fp16")
    if dtype == "fp16":
        for net in nets.values():
            net.half()
    output.parent.mkdir(parents=True, exist_ok=True)
    sha = save_nets(output, info["method"], nets, {"lumen.provenance": json.dumps(prov)})
    return {
        "sha256": sha,
        "manifest": manifest_entry(output, info["method"], list(nets), sha, prov, license),
        "notes": notes,
        "provenance": prov,
    }


def _headline(val: dict[str, dict]) -> dict[str, float]:
    """Metrics of the last stage that measured the whole pipeline (else the last stage)."""
    full = [m for m in val.values() if "psnr" in m]
    if full:
        return {k: full[-1][k] for k in ("psnr", "ssim") if k in full[-1]}
    return dict(list(val.values())[-1]) if val else {}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps("" if v is None else str(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def manifest_entry(output: Path, method, net_names, sha, prov, license) -> str:
    """The ``[weights.<name>]`` table to paste into weights_manifest.toml."""
    name = output.stem
    lines = [
        f"[weights.{_key(name)}]",
        f"method = {_toml_value(method)}",
        f"filename = {_toml_value(output.name)}",
        f"repo_id = {_toml_value('lumen-cli/' + name)}",
        'revision = ""',
        f"sha256 = {_toml_value(sha)}",
        f"bundled = {_toml_value(output.name)}",
        f"nets = {_toml_value(list(net_names))}",
        f"license = {_toml_value(license)}",
        "",
        f"[weights.{_key(name)}.provenance]",
        f"command = {_toml_value(prov['command'])}",
        f"data = {_toml_value(prov['data'])}",
        f"steps = {_toml_value(prov['steps'])}",
        f"val = {_toml_value(prov['val'])}",
        f"date = {_toml_value(prov['date'])}",
    ]
    return "\n".join(lines) + "\n"


def _repo_relative(path: str | None) -> str | None:
    """A config path as ``recipes/NAME.toml`` when it is a checked-in recipe, else as given."""
    if not path:
        return None
    p = Path(path)
    return f"recipes/{p.name}" if p.parent.name == "recipes" else str(p)
