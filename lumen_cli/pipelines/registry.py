"""Explicit registry of methods. Importing this module imports no torch: ``lumen methods``
and ``--help`` read it at once; the pipeline class is imported only when a method runs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str  # paper / origin, one line
    pipeline: str  # "module:Class"
    weights: tuple[str, ...] = ()  # names of entries in weights_manifest.toml
    default_steps: int | None = None
    supervised: bool = True

    def load_class(self):
        mod, cls = self.pipeline.split(":")
        return getattr(importlib.import_module(mod), cls)


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo(
            "retinex",
            "Classical illumination-map Retinex in the spirit of LIME (Guo et al., TIP 2017)",
            "lumen_cli.methods.retinex.pipeline:RetinexPipeline",
        ),
        MethodInfo(
            "kind",
            "KinD: Kindling the Darkness (Zhang, Zhang, Guo, ACM MM 2019)",
            "lumen_cli.methods.kind.pipeline:KinDPipeline",
            weights=("kind-lite",),
        ),
        MethodInfo(
            "diff-retinex",
            "Diff-Retinex: Rethinking Low-light Image Enhancement with A Generative "
            "Diffusion Model (Yi et al., ICCV 2023)",
            "lumen_cli.methods.diff_retinex.pipeline:DiffRetinexPipeline",
            weights=("diff-retinex-lite",),
            default_steps=5,
        ),
        MethodInfo(
            "lighten-diffusion",
            "LightenDiffusion: Unsupervised Low-Light Image Enhancement with Latent-Retinex "
            "Diffusion Models (Jiang et al., ECCV 2024)",
            "lumen_cli.methods.lighten_diffusion.pipeline:LightenDiffusionPipeline",
            weights=("lighten-diffusion-lite",),
            default_steps=20,
            supervised=False,
        ),
        MethodInfo(
            "refusion",
            "Refusion / IR-SDE: Image Restoration with Mean-Reverting Stochastic Differential "
            "Equations (Luo et al., ICML 2023; latent Refusion, CVPRW 2023)",
            "lumen_cli.methods.refusion.pipeline:RefusionPipeline",
            weights=("refusion-lite",),
            default_steps=5,  # the lite preset's (paper presets: 20)
        ),
        MethodInfo(
            "lldiffusion",
            "LLDiffusion: Learning Degradation Representations in Diffusion Models for "
            "Low-Light Image Enhancement (Wang et al., Pattern Recognition 2025)",
            "lumen_cli.methods.lldiffusion.pipeline:LLDiffusionPipeline",
            weights=("lldiffusion-lite",),
            default_steps=4,
        ),
    ]
}

DEFAULT_METHOD = "retinex"


def get(name: str) -> MethodInfo:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None
