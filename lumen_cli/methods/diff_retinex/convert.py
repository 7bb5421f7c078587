"""Official Diff-Retinex checkpoints -> lumen's ``paper`` preset (``lumen weights convert``).

The authors' test script opens three files (github.com/XunpengYi/Diff-Retinex):

- ``model/Diff_TDN/weights/checkpoint_LOL_Diff_TDN.pth``: a dict {model, optimizer,
  lr_scheduler, epoch, args (an ``argparse.Namespace``)}; only ``model`` (the TDN state dict)
  is used;
- ``model/Diff_RDA/weights/best_gen.pth`` and ``model/Diff_IDA/weights/best_gen.pth``: flat
  state dicts of the whole diffusion module: ``denoise_fn.*``, ``Unet_fn.*`` and twelve
  schedule buffers.

Files are recognised by their keys (the RDA's refiner is a Restormer, the IDA's a U-Net), so
their order and names do not matter; a folder is searched for ``*.pth`` (``*_opt.pth``
optimizer states skipped); DataParallel ``module.`` prefixes are removed. Widths come from
the tensor shapes. Two settings are not in the tensors: the RDA's GroupNorm group count (the
official code uses 32 unless the config JSON sets ``model.unet.norm_groups``; the IDA uses 1)
and the val beta schedule; give the official config JSON (``config/Diff_*_val.json``) as a
further source when it differs from the published one. The stored schedule buffers are
checked against the schedule used.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lumen_cli.errors import WeightsError
from lumen_cli.weights.convert import (
    Converted,
    find_state_dict,
    load_strict,
    safe_torch_load,
    strip_prefix,
)

_DEFAULT_BETA = {"rda": [1e-6, 1e-2], "ida": [1e-6, 2e-2]}
_DEFAULT_GROUPS = {"rda": 32, "ida": 1}


def _kind(sd: dict) -> str | None:
    if any(k.startswith("TDN_R.") for k in sd):
        return "tdn"
    if any(k.startswith("denoise_fn.") for k in sd):
        return "rda" if "Unet_fn.patch_embed.proj.weight" in sd else "ida"
    return None


def unet_config(sd: dict, prefix: str) -> dict:
    """inner, mults, res_blocks and attention levels of an SR3 U-Net from its key shapes."""
    inner = sd[f"{prefix}downs.0.weight"].shape[0]
    idx = sorted(
        {int(m.group(1)) for k in sd if (m := re.match(rf"{re.escape(prefix)}downs\.(\d+)\.", k))}
    )
    mults, attn, level, blocks, per_level = [], [], 0, 0, []
    for i in idx[1:]:
        if f"{prefix}downs.{i}.conv.weight" in sd:  # downsample: next level
            per_level.append(blocks)
            level, blocks = level + 1, 0
            continue
        out = sd[f"{prefix}downs.{i}.res_block.noise_func.noise_func.0.weight"].shape[0]
        if blocks == 0:
            mults.append(out // inner)
        if f"{prefix}downs.{i}.attn.qkv.weight" in sd and level not in attn:
            attn.append(level)
        blocks += 1
    per_level.append(blocks)
    if len(set(per_level)) != 1:
        raise WeightsError(f"{prefix}: unequal residual blocks per level {per_level}")
    return {"inner": inner, "mults": mults, "res_blocks": per_level[0], "attn_levels": attn}


def _read_json(path: Path) -> tuple[str, dict]:
    """(rda|ida, the ``model`` options) of an official config; its ``//`` comments dropped."""
    try:
        opt = json.loads("\n".join(ln.split("//")[0] for ln in path.read_text().splitlines()))
        unet = opt["model"]["unet"]
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path}: not an official Diff-Retinex config JSON ({e})") from None
    return ("rda" if unet.get("in_channel") == 6 else "ida"), opt["model"]


def diffusion_config(kind: str, sd: dict, model_json: dict | None) -> dict:
    """Constructor config of ``PaperDiffusion`` for an official RDA/IDA state dict."""
    m = model_json or {}
    den = unet_config(sd, "denoise_fn.")
    den["norm_groups"] = int(m.get("unet", {}).get("norm_groups", _DEFAULT_GROUPS[kind]))
    if kind == "rda":
        refiner = {"type": "restormer", "dim": sd["Unet_fn.patch_embed.proj.weight"].shape[0]}
    else:
        refiner = {"type": "unet", **unet_config(sd, "Unet_fn."), "norm_groups": 1}
    val = m.get("beta_schedule", {}).get("val", {})
    if val and val.get("schedule", "linear") != "linear":
        raise WeightsError(f"{kind}: only the linear beta schedule is supported")
    beta = [float(val.get("linear_start", _DEFAULT_BETA[kind][0])),
            float(val.get("linear_end", _DEFAULT_BETA[kind][1]))]  # fmt: skip
    n = int(val.get("n_timestep", 1000))
    return {"channels": sd["denoise_fn.final_conv.block.3.weight"].shape[0], "denoiser": den,
            "refiner": refiner, "beta": beta, "n_timestep": n}  # fmt: skip


def _collect(sources: list[Path]) -> tuple[dict[str, tuple[Path, dict]], dict[str, dict]]:
    found: dict[str, tuple[Path, dict]] = {}
    configs: dict[str, dict] = {}
    for src in sources:
        if src.suffix == ".json":
            kind, model = _read_json(src)
            configs[kind] = model
            continue
        files = [src] if src.is_file() else sorted(
            p for p in src.rglob("*.pth") if not p.name.endswith("_opt.pth")
        )  # fmt: skip
        for f in files:
            sd = strip_prefix(find_state_dict(safe_torch_load(f), keys=("model", "state_dict")))
            kind = _kind(sd)
            if kind is None:
                if src.is_file():
                    raise WeightsError(f"{f}: not a Diff-Retinex TDN, RDA or IDA checkpoint")
                continue
            if kind in found:
                raise WeightsError(f"two {kind.upper()} checkpoints given: {found[kind][0]}, {f}")
            found[kind] = (f, sd)
    if not found:
        raise WeightsError("no Diff-Retinex checkpoint among the sources")
    return found, configs


def convert(sources: list[Path]) -> Converted:
    """Build the ``paper`` nets that the given official files hold and load them strictly."""
    import torch

    from lumen_cli.nets.registry import build_net

    found, configs = _collect(sources)
    nets, notes = {}, {}
    for kind, (path, sd) in found.items():
        if kind == "tdn":
            cfg = {"dim": sd["TDN_R.patch_embed.proj.weight"].shape[0],
                   "l_channels": sd["net1_conv0.weight"].shape[0]}  # fmt: skip
            net = build_net("diff-retinex.paper.tdn", cfg)
        else:
            net = build_net(
                "diff-retinex.paper.diffusion", diffusion_config(kind, sd, configs.get(kind))
            )
            fresh = {k: v.clone() for k, v in net.state_dict().items() if "." not in k}
        load_strict(net, sd, f"{path.name} ({kind.upper()})")
        if kind != "tdn":  # the stored (train) schedule must be the one sampled with
            rel = [(fresh[k] - sd[k].float()).abs() / fresh[k].abs().clamp_min(1e-6) for k in fresh]
            worst = max(float(r.max()) for r in rel)
            if not np.isfinite(worst) or worst > 1e-4:
                raise WeightsError(
                    f"{path.name}: its schedule buffers differ from the linear schedule "
                    f"{net.beta} (relative {worst:.2g}); pass the official config JSON"
                )
            net.load_state_dict(fresh, strict=False)
        nets[kind] = net.to(torch.float32).eval()
    missing = [k for k in ("tdn", "rda", "ida") if k not in nets]
    if missing:
        notes["missing"] = ", ".join(missing) + " (decompose needs only tdn; enhance needs all)"
    return Converted(nets=nets, preset="paper", notes=notes)
