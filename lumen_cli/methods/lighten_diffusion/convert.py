"""Official LightenDiffusion checkpoint -> lumen ``paper`` preset.

The official inference loads one file, ``stage2_weight.pth.tar``: a ``torch.save`` dict with
``state_dict`` (the weights of ``nn.DataParallel(Net)``: every key starts with ``module.``;
``module.Unet.*`` the diffusion U-Net, ``module.decom.*`` the CTDN) beside ``optimizer``,
``ema_helper``, ``params`` and ``config`` (``argparse.Namespace``s, allowed by
``safe_torch_load``; ``torch.device`` loads as is). Only ``state_dict`` is used, as the official
``evaluate.py`` does (no EMA). Widths are read from the tensor shapes: the CTDN width C from
``decom.ReconNet.pyramid.convs.0.weight`` (C,3,5,5) (the official code fixes it at 64 by a
constructor default, not by its config), the U-Net's ``ch`` from ``Unet.conv_in.weight``, its
``ch_mult`` from the first block of each level and ``num_res_blocks`` from the key names.
"""

from __future__ import annotations

import re
from pathlib import Path

from lumen_cli.weights.convert import (
    Converted,
    find_state_dict,
    load_strict,
    safe_torch_load,
    strip_prefix,
)


def split_official(sd: dict) -> tuple[dict, dict]:
    """The official ``state_dict`` (``module.`` prefix or not) -> (U-Net keys, CTDN keys)."""
    sd = strip_prefix(sd, "module.")
    unet = {k[len("Unet.") :]: v for k, v in sd.items() if k.startswith("Unet.")}
    decom = {k[len("decom.") :]: v for k, v in sd.items() if k.startswith("decom.")}
    other = sorted(set(sd) - {"Unet." + k for k in unet} - {"decom." + k for k in decom})
    if other:
        from lumen_cli.errors import WeightsError

        raise WeightsError(f"unexpected keys in the LightenDiffusion checkpoint: {other[:3]}")
    return unet, decom


def unet_config(sd: dict) -> dict:
    """DiffusionUNet constructor arguments read from the shapes of its official state dict."""
    ch = int(sd["conv_in.weight"].shape[0])
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"down\.(\d+)\.", k))})
    mult = [int(sd[f"down.{i}.block.0.conv1.weight"].shape[0]) // ch for i in levels]
    blocks = len({k.split(".")[3] for k in sd if k.startswith("down.0.block.")})
    attn = [i for i in levels if f"down.{i}.attn.0.q.weight" in sd]
    return {
        "ch": ch,
        "ch_mult": mult,
        "num_res_blocks": blocks,
        "in_channels": int(sd["conv_in.weight"].shape[1]) // 2,
        "out_ch": int(sd["conv_out.weight"].shape[0]),
        "attn_levels": attn,
    }


def ctdn_config(sd: dict) -> dict:
    return {"channels": int(sd["ReconNet.pyramid.convs.0.weight"].shape[0])}


def nets_from_state_dict(sd: dict) -> dict:
    """{'unet': DiffusionUNet, 'decom': CTDN} built at the checkpoint's widths, loaded strictly."""
    from lumen_cli.nets.registry import build_net

    unet_sd, decom_sd = split_official(sd)
    unet = build_net("lighten-diffusion.unet", unet_config(unet_sd))
    decom = build_net("lighten-diffusion.ctdn", ctdn_config(decom_sd))
    load_strict(unet, unet_sd, "LightenDiffusion U-Net")
    load_strict(decom, decom_sd, "LightenDiffusion CTDN")
    return {"decom": decom.eval(), "unet": unet.eval()}


def convert(sources: list[Path]) -> Converted:
    """``lumen weights convert lighten-diffusion stage2_weight.pth.tar``."""
    files = [q for p in sources for q in (sorted(p.rglob("*.pth*")) if p.is_dir() else [p])]
    if len(files) != 1:
        from lumen_cli.errors import UsageError

        raise UsageError(f"lighten-diffusion: give the one stage2_weight.pth.tar (got {files})")
    obj = safe_torch_load(files[0])
    nets = nets_from_state_dict(find_state_dict(obj, ("state_dict",)))
    notes = {"step": obj.get("step"), "epoch": obj.get("epoch")} if isinstance(obj, dict) else {}
    return Converted(nets=nets, notes={k: v for k, v in notes.items() if v is not None})
