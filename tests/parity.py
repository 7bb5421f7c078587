"""The project's parity tolerance, shared by the tests that compare a port with the official
outputs recorded in ``../shared/parity/<method>/``."""

from __future__ import annotations

import torch


def close(out: torch.Tensor, ref: torch.Tensor, what: str = "", rel: float = 1e-4) -> None:
    """Assert max |out - ref| <= rel * max(1, max |ref|) in fp32 (rel 1e-4: the parity rule)."""
    out, ref = out.detach().float(), ref.float()
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} vs {tuple(ref.shape)}"
    tol = rel * max(1.0, float(ref.abs().max()))
    err = float((out - ref).abs().max())
    assert err <= tol, f"{what}: max |diff| {err:.3g} > {tol:.3g}"
