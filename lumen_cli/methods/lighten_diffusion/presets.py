"""Net configurations of LightenDiffusion's presets: {preset: {net: (arch, config)}}.

``paper`` is the official ``configs/unsupervised.yml`` (the CTDN at the official constructor's
default width); ``lite`` is lumen's compact version (see ``pipeline``).
"""

from __future__ import annotations

PRESETS = {
    # the official configs/unsupervised.yml; CTDN width = the official constructor default
    "paper": {
        "decom": ("lighten-diffusion.ctdn", {"channels": 64}),
        "unet": (
            "lighten-diffusion.unet",
            {"ch": 64, "ch_mult": [1, 2, 3, 4], "num_res_blocks": 2, "attn_levels": [2]},
        ),
    },
    # compact: the same modules at a quarter of the CTDN width (16: the decoder's 1/2-scale
    # features then hold 4 values per output pixel; width 8 held 2 for 3 colours, and blurred)
    # with residual decomposition heads around the smoothed max-RGB maps (``nets.prior_maps``),
    # and half the U-Net width
    "lite": {
        "decom": ("lighten-diffusion.ctdn", {"channels": 16, "prior_headroom": 0.6}),
        "unet": (
            "lighten-diffusion.unet",
            {
                "ch": 32,
                "ch_mult": [1, 1, 2, 2],
                "num_res_blocks": 1,
                "attn_levels": [2],
                # x0, not eps: at t ~ 950 (sqrt(alpha_bar) ~ 0.01) a small eps error sets the
                # whole brightness of an eps model's DDIM sample; an x0 model's estimate is the
                # conditional target itself from the first step
                "pred": "x0",
            },
        ),
    },
}

__all__ = ["PRESETS"]
