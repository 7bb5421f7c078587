"""How a method declares its training stages to the shared engine (``lumen_cli.train.loop``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

# loss(nets, batch, step) -> (scalar loss tensor, {"name": float} for the log)
# nets: every net of the method (the ones in ``trains`` require grad, the rest are frozen, eval)
# batch: paired: {"low": (B,3,h,w), "high": (B,3,h,w)}; unpaired: {"low": ..., "normal": ...}
#        float32 in [0,1] sRGB. Randomness inside a loss uses torch's global RNG, which the
#        engine seeds and saves in checkpoints (so resume is exact).
LossFn = Callable[[dict[str, nn.Module], dict[str, torch.Tensor], int], tuple[torch.Tensor, dict]]


@dataclass
class Stage:
    name: str
    trains: tuple[str, ...]  # nets updated by this stage
    loss: LossFn
    uses: tuple[str, ...] = ()  # frozen nets this stage needs (trained by an earlier stage)
    data: Literal["paired", "unpaired"] = "paired"
    # engine defaults for this stage; overridable by --config / --set
    defaults: dict[str, Any] = field(default_factory=dict)
    # True when the full pipeline gives meaningful PSNR/SSIM after this stage
    validate_full: bool = True
