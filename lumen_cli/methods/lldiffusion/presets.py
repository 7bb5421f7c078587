"""Net configurations of LLDiffusion's presets: {preset: {net: (arch, config)}}.

``paper`` is the official LOL architecture (``configs/deg-unet-lol.yml`` as the code reads it:
encoder width 16, K = 3 injections with channel attention, U-Net width 64, generator width 32;
52.8 M parameters at inference, 60.6 M with the generator), ``paper-v2`` the LOL-v2 real/syn
one (K = 6 by concatenation, U-Net and generator width 128, 4 residual blocks per level).
``lite`` is lumen's compact version (see ``pipeline``): a tone-curve prior (``tone``, lumen
addition), an encoder of width 4, and U-Nets run at 1/4 resolution (``stem`` 4) with four
levels, which keeps the paper's feature scales (H/16, H/8, H/4 at up levels 1-3). Its
denoiser fuses the features by concatenation (the paper's LOL-v2 mode) and normalises per
pixel, without middle attention, so that it can be tiled exactly.
``lite-plain`` is ``lite`` without the tone prior, to measure what the prior contributes.
"""

from __future__ import annotations

from typing import Any

from lumen_cli.prior.tone import TONE_NET

PAPER_MULT = [1, 1, 2, 2, 4, 4]
LOL_FEATS = [512, 512, 256]
V2_FEATS = [512, 512, 256, 256, 128, 128]


def _unet(in_ch: int, ch: int, nrb: int, feats: list[int], mode: str, temb: bool, **kw) -> dict:
    return {
        "in_channels": in_ch,
        "out_ch": 3,
        "ch": ch,
        "ch_mult": kw.pop("ch_mult", PAPER_MULT),
        "num_res_blocks": nrb,
        "attn_resolutions": kw.pop("attn_resolutions", [8]),
        "feat_channels": feats,
        "fuse_mode": mode,
        "time_embed": temb,
        **kw,
    }


def _paper(feats: list[int], ch: int, nrb: int, mode: str, gen_ch: int) -> dict:
    return {
        "encoder": ("lldiffusion.encoder", {"ch": 16, "feat_channels": feats, "levels": 6}),
        "denoiser": ("lldiffusion.unet", _unet(9, ch, nrb, feats, mode, True)),
        "generator": ("lldiffusion.unet", _unet(3, gen_ch, nrb, feats, mode, False)),
    }


LITE_FEATS = [32, 32, 32]
LITE_UNET = {"ch_mult": [1, 2, 2, 2], "attn_resolutions": [], "stem": 4}

LITE_ENCODER = ("lldiffusion.encoder", {"ch": 4, "feat_channels": LITE_FEATS, "levels": 6})
LITE_GENERATOR = (
    "lldiffusion.unet",
    _unet(3, 32, 1, LITE_FEATS, "cattn", False, **{**LITE_UNET, "ch_mult": [1, 1, 1, 1]}),
)


# the lite denoiser reads no whole-input statistic (per-pixel norms, no middle attention,
# fusion by concatenation), so tiles agree with the whole image; its x0 keeps T(x)'s
# frequencies below a Gaussian of ``anchor`` px
LITE_LOCAL = {"norm": "pixel", "mid_attn": False, "anchor": 8.0}


def _lite_denoiser(in_ch: int) -> tuple[str, dict]:
    cfg = _unet(in_ch, 32, 1, LITE_FEATS, "cat", True, prediction="x0", **LITE_UNET, **LITE_LOCAL)
    return ("lldiffusion.unet", cfg)


PRESETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "lite": {
        "tone": TONE_NET,
        "encoder": LITE_ENCODER,
        "denoiser": _lite_denoiser(12),  # x_t, the input, its colour map, T(x)
        "generator": LITE_GENERATOR,
    },
    # the ablation of the tone prior: lite's nets without it (the U-Net predicts x0 from
    # x_t, the input and its colour map; no T(x), no low-frequency anchor, no shadow finish)
    "lite-plain": {
        "encoder": LITE_ENCODER,
        "denoiser": _lite_denoiser(9),
        "generator": LITE_GENERATOR,
    },
    "paper": _paper(LOL_FEATS, 64, 2, "cattn", 32),
    "paper-v2": _paper(V2_FEATS, 128, 4, "cat", 128),
}
