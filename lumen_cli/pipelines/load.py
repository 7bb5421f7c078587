"""Build a method's pipeline with its weights: the one loader for enhance, decompose, eval and
the benchmark."""

from __future__ import annotations

from pathlib import Path

import torch

from lumen_cli.errors import UsageError, WeightsError


def load_pipeline(method: str, weights: str | Path | None = None, device="cpu"):
    """The method's pipeline on ``device``: weights from ``weights`` (a file) if given, else from
    the method's manifest entry (HF cache / bundled copy, sha256 checked)."""
    from lumen_cli import devices
    from lumen_cli.pipelines import registry

    try:
        info = registry.get(method)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    devices.configure_cpu()
    cls = info.load_class()
    device = torch.device(device)
    if not info.weights and weights is None:
        return cls({}).to(device)
    from lumen_cli.weights.resolve import load_weights

    name = None if weights is not None else info.weights[0]  # a file given wins outright
    m, nets, _ = load_weights(name, weights, device)
    if m != method:
        raise WeightsError(f"{weights}: holds weights of method {m!r}, not {method!r}")
    check_finite(nets, weights or name)
    pipe = cls(nets).to(device)
    if pipe.channels_last:
        pipe.nets.to(memory_format=torch.channels_last)
    return pipe


def check_finite(nets: dict, source) -> None:
    """Refuse weights holding NaN/inf (they would silently give black images)."""
    for net_name, net in nets.items():
        for key, t in net.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise WeightsError(
                    f"{source}: tensor {net_name}.{key} holds NaN or infinite values; "
                    "these weights are damaged and were not used"
                )
