"""``lumen methods`` and ``lumen env``."""

from __future__ import annotations

import json
from math import prod
from pathlib import Path

import typer


def _params_in(path: Path) -> int:
    """Parameter count of a safetensors file, from its header alone (no torch)."""
    from lumen_cli.weights.checkpoint import read_header

    header = read_header(Path(path))
    return sum(prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _about(method: str) -> dict[str, str]:
    """``ABOUT`` of ``lumen_cli/methods/<method>/about.py`` (presets, bundled file, lumen's
    additions, how to get the paper's weights), or {} where a method has none."""
    import importlib

    try:
        mod = importlib.import_module(f"lumen_cli.methods.{method.replace('-', '_')}.about")
    except ModuleNotFoundError:
        return {}
    return dict(getattr(mod, "ABOUT", {}))


def _behaviour(info) -> dict[str, str]:
    """How ``--exposure`` maps onto the method's own control, and whether it decomposes
    (imports the pipeline class, hence torch: ``--verbose`` only)."""
    cls = info.load_class()
    return {
        "exposure": "multiplies the output's linear light (1 = the method's own choice): "
        + cls.exposure_doc,
        "decompose": "yes" if cls.decomposes else "no (lumen decompose refuses it)",
    }


def methods(
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also how --exposure acts and whether it decomposes."
    ),
) -> None:
    """List the methods: default steps, parameter counts and whether weights are here."""
    from lumen_cli.pipelines.registry import METHODS
    from lumen_cli.weights.manifest import load_manifest

    manifest = load_manifest()
    rows = []
    for m in METHODS.values():
        if not m.weights:
            rows.append(
                {
                    "method": m.name,
                    "steps": m.default_steps,
                    "params": 0,
                    "weights": "none needed",
                    "title": m.title,
                }
            )
            continue
        from lumen_cli.weights.resolve import bundled_file, cached_path

        for w in m.weights:
            entry = manifest.get(w)
            path = None
            state = "not in manifest"
            if entry is not None:
                cached = cached_path(entry) if entry.published else None
                bundled = bundled_file(entry)
                path = cached or bundled
                state = "cached" if cached else "bundled" if bundled else "missing"
            rows.append(
                {
                    "method": m.name,
                    "steps": m.default_steps,
                    "params": _params_in(path) if path else None,
                    "weights": f"{w}: {state}",
                    "title": m.title,
                }
            )
    for r in rows:
        r["about"] = _about(r["method"])
        if verbose:
            r["about"] = {**r["about"], **_behaviour(METHODS[r["method"]])}
    if json_out:
        print(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("method", "default steps", "parameters", "weights", "paper")
    for r in rows:
        p = r["params"]
        t.add_row(
            r["method"],
            str(r["steps"] or "-"),
            "-" if p is None else f"{p / 1e6:.2f} M" if p else "0",
            r["weights"],
            r["title"],
        )
    console = Console()
    console.print(t)
    for name, about in {r["method"]: r["about"] for r in rows}.items():
        if about:
            console.print(f"\n[bold]{name}[/bold]")
            for k, v in about.items():
                console.print(f"  {k}: {v}", highlight=False)


def env(json_out: bool = typer.Option(False, "--json", help="Print JSON instead.")) -> None:
    """Versions, devices, CPU features (bf16/AMX), the weights cache and offline mode."""
    import os
    import platform

    import torch

    from lumen_cli import __version__, devices
    from lumen_cli.weights.manifest import manifest_path
    from lumen_cli.weights.resolve import hub_cache_dir, hub_offline

    flags = devices.cpu_flags()
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    info = {
        "lumen": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "mps": devices._mps_available(),
        "auto_device": str(devices.pick_device("auto")),
        "auto_precision": devices.describe(
            devices.pick_device("auto"),
            devices.resolve_precision("auto", devices.pick_device("auto")),
        ),
        "hf_cache": str(hub_cache_dir()),
        "hf_offline": hub_offline(),
        "manifest": str(manifest_path()),
    }
    from lumen_cli.envinfo import dependency_versions, weights_revisions

    info["packages"] = dependency_versions()
    info["weights"] = weights_revisions()
    if json_out:
        print(json.dumps(info, indent=1))
        return
    flat = {}
    for k, v in info.items():
        flat.update({f"{k}: {kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
    width = max(map(len, flat))
    for k, v in flat.items():
        print(f"{k:<{width}}  {v}")
