"""``lumen weights convert lldiffusion best-*.pth``: the official checkpoint -> ``paper`` preset.

The official file is a ``torch.save`` dict (``epoch``, ``step``, ``state_dict``, ``optimizer``,
``ema_helper``, ``params`` and ``config`` argparse Namespaces, ``lr_scheduler``). The weights
are ``state_dict``: the DataParallel-wrapped model, every key prefixed ``module.``, with the
encoder (``encoder.*``), the denoiser (``diff_unet.*``) and the training-only generator
(``deg_unet.*``). The official test uses these raw weights, not ``ema_helper``, and so does
this converter. Spectral-normalised convolutions keep ``weight_orig`` / ``weight_u`` /
``weight_v``, loaded as they are.

The architecture is read from the tensor shapes (encoder width, feature widths, U-Net width,
multipliers, blocks per level, attention levels, fusion mode), so a file of any official
config converts; the preset is named ``paper`` (LOL) or ``paper-v2`` (LOL-v2 real/syn) when
the shapes are those of the released files.
"""

from __future__ import annotations

from pathlib import Path

from lumen_cli.errors import WeightsError
from lumen_cli.weights.convert import (
    Converted,
    find_state_dict,
    load_strict,
    safe_torch_load,
    strip_prefix,
)

OFFICIAL_NETS = {"encoder": "encoder", "diff_unet": "denoiser", "deg_unet": "generator"}


def _count(sd: dict, fmt: str) -> int:
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n


def encoder_config(sd: dict, levels: int) -> dict:
    """DegEncoder config from its tensors (keys without the ``encoder.`` net prefix)."""
    k = _count(sd, "upsample.convs.{}.2.weight_orig")
    return {
        "ch": int(sd["encoder.layer1.0.weight_orig"].shape[0]),
        "feat_channels": [int(sd[f"upsample.convs.{i}.2.weight_orig"].shape[0]) for i in range(k)],
        "levels": levels,
    }


def unet_config(sd: dict, feats: list[int]) -> dict:
    """DiffusionUNet config from its tensors (keys without the net prefix)."""
    w = sd["conv_in.weight"]
    ch, L = int(w.shape[0]), _count(sd, "down.{}.block.0.norm1.weight")
    return {
        "in_channels": int(w.shape[1]),
        "out_ch": int(sd["conv_out.weight"].shape[0]),
        "ch": ch,
        "ch_mult": [int(sd[f"down.{i}.block.0.conv1.weight"].shape[0]) // ch for i in range(L)],
        "num_res_blocks": _count(sd, "down.0.block.{}.norm1.weight"),
        "attn_resolutions": [
            2 ** (L - 1 - i) for i in range(L) if f"down.{i}.attn.0.q.weight" in sd
        ],
        "feat_channels": feats,
        "fuse_mode": "cattn" if any(k.startswith("up.fuse.cattns.") for k in sd) else "cat",
        "time_embed": "temb.dense.0.weight" in sd,
    }


def split_nets(sd: dict) -> dict[str, dict]:
    """{official net name: its tensors without the prefix}; refuses unknown top-level names."""
    out: dict[str, dict] = {k: {} for k in OFFICIAL_NETS}
    for key, v in sd.items():
        head, _, rest = key.partition(".")
        if head not in out:
            raise WeightsError(f"unexpected key {key!r}: not an LLDiffusion checkpoint")
        out[head][rest] = v
    return out


def convert(sources: list[Path]) -> Converted:
    from lumen_cli.methods.lldiffusion.presets import PRESETS
    from lumen_cli.nets.registry import build_net

    files = [p for p in sources if p.is_file()]
    if len(files) != 1:
        raise WeightsError("lldiffusion: give exactly one official best-*.pth file")
    ck = safe_torch_load(files[0])
    parts = split_nets(strip_prefix(find_state_dict(ck, ("state_dict",)), "module."))
    if not parts["encoder"] or not parts["diff_unet"]:
        raise WeightsError(f"{files[0]}: no encoder / diff_unet weights in its state_dict")
    den = unet_config(parts["diff_unet"], [])
    levels = len(den["ch_mult"])
    enc = encoder_config(parts["encoder"], levels)
    den["feat_channels"] = enc["feat_channels"]
    cfgs = {"encoder": ("lldiffusion.encoder", enc), "denoiser": ("lldiffusion.unet", den)}
    if parts["deg_unet"]:
        gen = unet_config(parts["deg_unet"], enc["feat_channels"])
        cfgs["generator"] = ("lldiffusion.unet", gen)
    preset = next((name for name in ("paper", "paper-v2") if PRESETS[name] == cfgs), "paper")
    nets = {}
    for official, name in OFFICIAL_NETS.items():
        if name not in cfgs:
            continue
        arch, cfg = cfgs[name]
        nets[name] = build_net(arch, cfg)
        load_strict(nets[name], parts[official], f"{files[0].name}: {official}")
    notes = {"weights": "raw state_dict (ema_helper not used, as the official test)"}
    if isinstance(ck, dict) and "epoch" in ck:
        notes["epoch"] = int(ck["epoch"])
    if PRESETS.get(preset) != cfgs:
        notes["architecture"] = "not a released configuration; read from the tensor shapes"
    return Converted(nets=nets, preset=preset, notes=notes)
