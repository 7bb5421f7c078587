"""Diff-Retinex's presets: net name -> (arch name in ``lumen_cli.nets.registry``, config).

``lite`` is lumen's compact, CPU-trainable preset (with the global tone prior's curve net);
``paper`` the official architecture (``paper_nets.py``, loadable from the authors' checkpoints).
"""

from __future__ import annotations

from typing import Any

from lumen_cli.methods.diff_retinex.paper_pipeline import PAPER
from lumen_cli.prior.tone import TONE_NET

_RDA_SCHED = {"n_train": 1000, "beta_start": 1e-6, "beta_end": 1e-2}
_IDA_SCHED = {"n_train": 1000, "beta_start": 1e-6, "beta_end": 2e-2}

PRESETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    # shipped: trainable on one CPU core in about 70 minutes
    "lite": {
        "tone": TONE_NET,
        "tdn": (
            "diff-retinex.tdn",
            {
                "dim": 16,
                "blocks": [1, 1, 1],
                "refinement": 1,
                "heads": [1, 2, 4],
                "ffn_expansion": 2.0,
                "l_channels": 16,
                "stem": 2,
            },
        ),
        "rda": (
            "diff-retinex.denoiser",
            {
                "in_ch": 3,
                "cond_ch": 9,
                "out_ch": 3,
                "inner": 48,
                "mults": [1, 2, 2],
                "res_blocks": 1,
                "attn_levels": [],
                "heads": 4,
                "stem": 4,
                "cond_blocks": 1,
                "prediction": "x0",
                "residual": 3,
                "base_gain": 0.5,
                **_RDA_SCHED,
            },
        ),
        "ida": (
            "diff-retinex.denoiser",
            {
                "in_ch": 1,
                "cond_ch": 7,
                "out_ch": 1,
                "inner": 24,
                "mults": [1, 2, 4, 4],
                "res_blocks": 1,
                "attn_levels": [2],
                "heads": 4,
                "stem": 1,
                "cond_blocks": 1,
                "prediction": "x0",
                "residual": 1,
                "work_size": 96,
                **_IDA_SCHED,
            },
        ),
    },
    # the authors' architecture and test recipe (converted official weights): see paper_pipeline
    "paper": PAPER,
}
