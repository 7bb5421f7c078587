"""Net configurations of Refusion's presets: {preset: {net: (arch, config)}}.

``paper`` / ``paper-latent`` are the official pixel and latent models (the deshadowing
ConditionalNAFNet and its latent auto-encoder); ``lite``, ``lite-input``, ``lite-pixel`` and
``lite-pixel-input`` are lumen's compact ones (see ``pipeline``).
"""

from __future__ import annotations

from typing import Any

from lumen_cli.prior.tone import TONE_NET

PAPER_NAF = {
    "img_channel": 3,
    "width": 64,
    "enc_blk_nums": [1, 1, 1, 28],
    "middle_blk_num": 1,
    "dec_blk_nums": [1, 1, 1, 1],
}
PAPER_AE = {"in_ch": 3, "out_ch": 3, "ch": 8, "ch_mult": [4, 8, 8, 16], "embed_dim": 8}
LITE_NAF = {**PAPER_NAF, "img_channel": 3, "width": 16, "enc_blk_nums": [1, 1, 1, 1]}
LITE_NETS = {
    "noise": ("refusion.nafnet", {**LITE_NAF, "global_skip": True, "prediction": "x0"}),
    "pool": ("refusion.pool", {"factor": 8, "latent_scale": 10.0}),
}
PIXEL_NETS = {
    "noise": (
        "refusion.nafnet",
        {**LITE_NAF, "stem": 2, "global_skip": True, "prediction": "x0"},
    ),
}

PRESETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "paper": {"noise": ("refusion.nafnet", PAPER_NAF)},
    "paper-latent": {
        "noise": ("refusion.nafnet", {**PAPER_NAF, "img_channel": 8, "global_skip": True}),
        "ae": ("refusion.unet", PAPER_AE),
    },
    "lite": {"tone": TONE_NET, **LITE_NETS},
    "lite-input": LITE_NETS,
    "lite-pixel": {"tone": TONE_NET, **PIXEL_NETS},
    "lite-pixel-input": PIXEL_NETS,
}

__all__ = ["PRESETS"]
