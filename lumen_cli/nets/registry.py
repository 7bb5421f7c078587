"""Explicit registry of network architectures: arch name -> "module:Class" (imported lazily).

A checkpoint stores, per net, its arch name and constructor config (JSON) in the safetensors
metadata, so ``build_net(arch, config)`` rebuilds it exactly.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

ARCHS: dict[str, str] = {
    # filled in by each method's nets module, e.g.
    # "kind.decom": "lumen_cli.methods.kind.nets:DecomNet",
    "kind.decom": "lumen_cli.methods.kind.nets:DecomNet",
    "kind.restore": "lumen_cli.methods.kind.nets:RestoreNet",
    "kind.adjust": "lumen_cli.methods.kind.nets:AdjustNet",
    "kind.ratio": "lumen_cli.methods.kind.nets:RatioNet",
    "kind.restore_msia": "lumen_cli.methods.kind.msia:RestoreMSIANet",
    "diff-retinex.tdn": "lumen_cli.methods.diff_retinex.nets:TDN",
    "diff-retinex.denoiser": "lumen_cli.methods.diff_retinex.nets:CondUNet",
    "diff-retinex.paper.tdn": "lumen_cli.methods.diff_retinex.paper_nets:DecomNet",
    "diff-retinex.paper.diffusion": "lumen_cli.methods.diff_retinex.paper_unet:PaperDiffusion",
    "tone.curves": "lumen_cli.nets.tone:ToneCurveNet",
    "lighten-diffusion.ctdn": "lumen_cli.methods.lighten_diffusion.nets:CTDN",
    "lighten-diffusion.unet": "lumen_cli.methods.lighten_diffusion.unet:DiffusionUNet",
    "refusion.nafnet": "lumen_cli.methods.refusion.nets:ConditionalNAFNet",
    "refusion.unet": "lumen_cli.methods.refusion.nets:LatentUNet",
    "refusion.pool": "lumen_cli.methods.refusion.nets:PoolLatent",
    "lldiffusion.encoder": "lumen_cli.methods.lldiffusion.nets:DegEncoder",
    "lldiffusion.unet": "lumen_cli.methods.lldiffusion.unet:DiffusionUNet",
}


def build_net(arch: str, config: dict[str, Any]) -> nn.Module:
    try:
        target = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown network architecture {arch!r}; known: {sorted(ARCHS)}") from None
    mod, cls = target.split(":")
    net = getattr(importlib.import_module(mod), cls)(**config)
    net.lumen_arch = arch  # remembered for checkpoints
    net.lumen_config = dict(config)
    return net
