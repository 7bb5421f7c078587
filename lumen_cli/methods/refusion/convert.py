"""Official Refusion / IR-SDE checkpoints -> lumen ``paper`` / ``paper-latent`` presets.

The official files are flat state dicts (``torch.save`` of key -> tensor; a ``module.`` prefix,
if any, is stripped, as the official loader does). Lumen loads them strictly.

- ``lumen weights convert refusion refusion.pth``: the pixel model (the noise network alone,
  ``img_channel`` 3): preset ``paper``.
- ``lumen weights convert refusion latent-reffusion-dehazing.pth latent-dehazing.pth``: the
  latent model needs both files, the noise network (``img_channel`` 8) and the auto-encoder
  (told apart by their keys, in any order): preset ``paper-latent``.

Widths and block counts are read from the tensor shapes, so reduced copies convert too. The
latent noise network is the variant with the intro -> ending skip (``global_skip``): its keys
equal the pixel variant's, so the channel count (8, a latent) decides.
"""

from __future__ import annotations

import re
from pathlib import Path

from lumen_cli.errors import UsageError
from lumen_cli.weights.convert import (
    Converted,
    find_state_dict,
    load_strict,
    safe_torch_load,
    strip_prefix,
)


def _count(sd: dict, pattern: str) -> list[int]:
    """Distinct integers captured by ``pattern`` (one group) over the keys, sorted."""
    return sorted({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})


def nafnet_config(sd: dict) -> dict:
    """ConditionalNAFNet constructor arguments from the shapes and key names."""
    levels = _count(sd, r"encoders\.(\d+)\.")
    return {
        "img_channel": int(sd["intro.weight"].shape[1]) // 2,
        "width": int(sd["intro.weight"].shape[0]),
        "enc_blk_nums": [len(_count(sd, rf"encoders\.{i}\.(\d+)\.")) for i in levels],
        "middle_blk_num": len(_count(sd, r"middle_blks\.(\d+)\.")),
        "dec_blk_nums": [len(_count(sd, rf"decoders\.{i}\.(\d+)\.")) for i in levels],
        "global_skip": int(sd["intro.weight"].shape[1]) // 2 != 3,
    }


def unet_config(sd: dict) -> dict:
    """LatentUNet constructor arguments from the shapes and key names."""
    ch = int(sd["init_conv.weight"].shape[0])
    levels = _count(sd, r"encoder\.(\d+)\.")
    return {
        "in_ch": int(sd["init_conv.weight"].shape[1]),
        "out_ch": int(sd["final_conv.weight"].shape[0]),
        "ch": ch,
        "ch_mult": [int(sd[f"encoder.{i}.3.weight"].shape[0]) // ch for i in levels],
        "embed_dim": int(sd["latent_conv.weight"].shape[0]),
        "attn": any(".2.fn." in k for k in sd),
    }


def nets_from_state_dicts(sds: list[dict]) -> tuple[dict, str]:
    """({'noise': ConditionalNAFNet[, 'ae': LatentUNet]}, preset) loaded strictly."""
    from lumen_cli.nets.registry import build_net

    noise = [sd for sd in sds if "intro.weight" in sd]
    ae = [sd for sd in sds if "init_conv.weight" in sd]
    if len(noise) != 1 or len(ae) > 1 or len(noise) + len(ae) != len(sds):
        raise UsageError(
            "refusion: give the noise network's .pth (pixel model), or it and the latent "
            "auto-encoder's .pth (latent model)"
        )
    cfg = nafnet_config(noise[0])
    nets = {"noise": build_net("refusion.nafnet", cfg)}
    load_strict(nets["noise"], noise[0], "Refusion noise network")
    if not ae:
        if cfg["img_channel"] != 3:
            raise UsageError("refusion: a latent noise network needs the auto-encoder's .pth too")
        return {k: v.eval() for k, v in nets.items()}, "paper"
    nets["ae"] = build_net("refusion.unet", unet_config(ae[0]))
    load_strict(nets["ae"], ae[0], "Refusion latent auto-encoder")
    return {k: v.eval() for k, v in nets.items()}, "paper-latent"


def convert(sources: list[Path]) -> Converted:
    """``lumen weights convert refusion FILE.pth [AUTOENCODER.pth]``."""
    files = [q for p in sources for q in (sorted(p.rglob("*.pth")) if p.is_dir() else [p])]
    sds = [strip_prefix(find_state_dict(safe_torch_load(f))) for f in files]
    nets, preset = nets_from_state_dicts(sds)
    return Converted(nets=nets, preset=preset)
