"""Official KinD / KinD++ checkpoints -> lumen's ``paper`` / ``paper-plus`` presets.

Reads what the authors distribute, without TensorFlow:

- the TensorFlow V2 checkpoints of zhangyhuaee/KinD (``checkpoint/decom_net_train``,
  ``illumination_adjust_net_train``, ``Restoration_net_train``) and zhangyhuaee/KinD_plus
  (``decom_model``, ``illu_model``, ``restoration_model``): a checkpoint folder, its
  ``.index`` / ``.data`` file, or a parent folder holding several (``lumen_cli.weights.tf_bundle``).
  Nets are recognised by their variable scope (``DecomNet``, ``Illumination_adjust_net`` or
  ``I_enhance_Net``, ``Restoration_net`` or KinD++'s ``Denoise_Net``); kernels are transposed
  from TF's ``[kh, kw, in, out]`` (``[kh, kw, out, in]`` for transposed convs) to PyTorch's.
- the ``.pth`` state dicts of the PyTorch port fenghansen/KinD-pytorch (``decom_net.pth``,
  ``illum_net.pth``, ``restore_net.pth``), opened with ``safe_torch_load``. The port is its own
  architecture (3x3 heads, biased transposed convs, LeakyReLU 0.01, ...), so its files become
  the ``port`` preset, whose nets reproduce the port's layers.

Partial sets are allowed (the official repositories publish no restoration checkpoint): the
result holds the nets found, and ``Converted.notes["missing"]`` names the others.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lumen_cli.errors import WeightsError
from lumen_cli.weights.convert import Converted, find_state_dict, load_strict, safe_torch_load

if TYPE_CHECKING:
    import torch

# TF variable scope -> (lumen net, KinD++?)
SCOPES = {
    "DecomNet": ("decom", None),
    "Illumination_adjust_net": ("adjust", False),
    "I_enhance_Net": ("adjust", True),
    "Restoration_net": ("restore", False),
    "Denoise_Net": ("restore", True),
}
MISSING_HINT = {
    "decom": "the decomposition net (checkpoint/decom_net_train, KinD++: decom_model)",
    "adjust": "the illumination adjustment net (illumination_adjust_net_train / illu_model)",
    "restore": "the restoration net (Restoration_net_train / restoration_model: not in the "
    "official repositories; the authors' README links it for download)",
}
_WB = (("weights", "weight"), ("biases", "bias"))  # TF slim names -> torch
_OPTIMIZER = re.compile(r"(/Adam(_\d+)?$|/Momentum$|^beta[12]_power|^global_step$)")


# -- official name -> lumen name ------------------------------------------------------------
def decom_keys() -> dict[str, str]:
    """``DecomNet/...`` variable -> ``DecomNet`` parameter."""
    layers = {
        "g_conv1_1": "conv1", "g_conv2_1": "conv2", "g_conv3_1": "conv3", "g_conv8_1": "conv4",
        "g_conv9_1": "conv5", "g_conv10": "r_out", "l_conv1_2": "l_conv", "l_conv1_4": "l_out",
    }  # fmt: skip
    out = {f"DecomNet/{k}/{p}": f"{v}.{q}" for k, v in layers.items() for p, q in _WB}
    out |= {"DecomNet/g_up_1/weights": "up1.deconv.weight"}
    out |= {"DecomNet/g_up_2/weights": "up2.deconv.weight"}
    return out


def adjust_keys(scope: str) -> dict[str, str]:
    """``Illumination_adjust_net`` / ``I_enhance_Net`` variable -> ``AdjustNet`` parameter."""
    conv = "conv" if scope == "I_enhance_Net" else "en_conv"  # KinD++ / KinD layer names
    names = {f"{conv}_{i + 1}": f"convs.{i}" for i in range(3)} | {f"{conv}_4": "out"}
    return {f"{scope}/{k}/{p}": f"{v}.{q}" for k, v in names.items() for p, q in _WB}


def unet_keys() -> dict[str, str]:
    """KinD ``Restoration_net`` variable -> ``RestoreNet`` parameter (5 levels, 2 convs)."""
    out = {}
    for lvl in range(1, 10):
        blk = f"down.{lvl - 1}" if lvl <= 5 else f"up_blocks.{lvl - 6}"
        for j in (1, 2):
            out |= {f"Restoration_net/de_conv{lvl}_{j}/{p}": f"{blk}.{j - 1}.{q}" for p, q in _WB}
        if lvl >= 6:
            out[f"Restoration_net/up_{lvl}/weights"] = f"ups.{lvl - 6}.deconv.weight"
    out |= {f"Restoration_net/de_conv10/{p}": f"out.{q}" for p, q in _WB}
    return out


def msia_keys() -> dict[str, str]:
    """KinD++ ``Denoise_Net`` variable -> ``RestoreMSIANet`` parameter / BatchNorm buffer."""
    s = "Denoise_Net"
    bn = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
          ("moving_variance", "running_var"))  # fmt: skip
    out = {}
    for i in range(4):
        p, m = f"{s}/de_conv{i + 1}", f"msia.{i}"
        for j in (1, 2):
            out |= {f"{p}_{j}/{a}": f"stages.{i}.{j - 1}.{b}" for a, b in _WB}
        out[f"{p}/conv/kernel"] = f"{m}.att.weight"
        for br in ("pu1", "pu2", "pu4"):
            out |= {f"{p}{br}/pu_conv/{a}": f"{m}.{br}.conv.{b}" for a, b in _WB}
            out |= {f"{p}{br}/batch_normalization/{a}": f"{m}.{br}.bn.{b}" for a, b in bn}
        ups = {"pu2": ["conv_up"], "pu4": ["conv_up_1", "conv_up"]}
        for br, names in ups.items():
            for k, name in enumerate(names):
                out |= {f"{p}{br}/{name}/{a}": f"{m}.{br}.ups.{k}.{b}" for a, b in _WB}
        out |= {f"{p}multi_scale_feature/{a}": f"{m}.fuse.{b}" for a, b in _WB}
    out |= {f"{s}/de_conv5_1/{a}": f"tail.{b}" for a, b in _WB}
    out |= {f"{s}/de_conv10/{a}": f"out.{b}" for a, b in _WB}
    return out


def official_keys(net: str, plus: bool) -> dict[str, str]:
    """The whole official -> lumen key map of one net."""
    if net == "decom":
        return decom_keys()
    if net == "adjust":
        return adjust_keys("I_enhance_Net" if plus else "Illumination_adjust_net")
    return msia_keys() if plus else unet_keys()


def tf_to_torch(arr: np.ndarray) -> torch.Tensor:
    """A TF tensor as PyTorch wants it: 4-d kernels ``[kh,kw,a,b]`` -> ``[b,a,kh,kw]`` (for a
    conv ``[out,in,kh,kw]``; for a transposed conv TF's ``[kh,kw,out,in]`` becomes PyTorch's
    ``[in,out,kh,kw]``, the same permutation, no flip)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t.permute(3, 2, 0, 1).contiguous() if t.dim() == 4 else t


# -- nets -----------------------------------------------------------------------------------
def _build(preset: str, net: str):
    from lumen_cli.methods.kind.pipeline import KinDPipeline
    from lumen_cli.nets.registry import build_net

    arch, cfg = KinDPipeline.presets[preset][net]
    return build_net(arch, cfg)


def convert_official(tensors: dict[str, np.ndarray]) -> Converted:
    """Official TF variables (any subset of the three nets, KinD or KinD++) -> Converted."""
    import torch

    groups: dict[str, dict[str, np.ndarray]] = {}
    ignored = []
    for name, arr in tensors.items():
        if _OPTIMIZER.search(name):
            ignored.append(name)
            continue
        scope = name.split("/", 1)[0]
        if scope not in SCOPES:
            raise WeightsError(
                f"{name}: not a KinD / KinD++ variable (scopes known: {', '.join(SCOPES)})"
            )
        groups.setdefault(scope, {})[name] = arr
    found = {SCOPES[s][0]: s for s in groups}
    if len(found) < len(groups):
        raise WeightsError(f"two checkpoints of the same net given: {sorted(groups)}")
    flags = {SCOPES[s][1] for s in groups} - {None}
    if len(flags) > 1:
        raise WeightsError("KinD and KinD++ checkpoints mixed: convert them separately")
    plus = flags == {True}
    preset = "paper-plus" if plus else "paper"
    nets = {}
    for net in ("decom", "restore", "adjust"):
        if net not in found:
            continue
        keys = official_keys(net, plus)
        given = groups[found[net]]
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise WeightsError(f"{found[net]}: variables lumen does not know: {unknown[:5]}")
        module = _build(preset, net)
        sd = {keys[k]: tf_to_torch(v) for k, v in given.items()}
        for k in module.state_dict():  # BatchNorm's step counter has no TF counterpart
            if k.endswith("num_batches_tracked") and k not in sd:
                sd[k] = torch.zeros((), dtype=torch.long)
        load_strict(module, sd, f"{found[net]} ({len(given)} variables)")
        nets[net] = module
    if not nets:
        raise WeightsError("no KinD network found in the given checkpoints")
    notes = {"model": "KinD++" if plus else "KinD"}
    missing = [n for n in ("decom", "adjust", "restore") if n not in nets]
    if missing:
        notes["missing"] = "; ".join(MISSING_HINT[n] for n in missing)
    if ignored:
        notes["ignored"] = f"{len(ignored)} optimizer variables"
    return Converted(nets, preset=preset, notes=notes)


# -- the PyTorch port -----------------------------------------------------------------------
PORT_FILES = {"decom": "decom_net", "adjust": "illum_net", "restore": "restore_net"}


def port_keys(net: str) -> dict[str, str]:
    """fenghansen/KinD-pytorch state-dict key -> lumen ``port`` preset parameter."""
    if net == "decom":
        layers = {
            "conv_input.conv_relu.0": "conv1", "conv_r1.conv_relu.0": "conv2",
            "conv_r2.conv_relu.0": "conv3", "deconv_r1.deconv_relu.0": "up1.deconv",
            "conv_r3.conv_relu.0": "conv4", "deconv_r2.deconv_relu.0": "up2.deconv",
            "conv_r4.conv_relu.0": "conv5", "conv_r5": "r_out",
            "conv_i1.conv_relu.0": "l_conv", "conv_i2": "l_out",
        }  # fmt: skip
    elif net == "adjust":
        layers = {f"conv_i{i + 1}.conv_relu.0": f"convs.{i}" for i in range(3)}
        layers["conv_i4"] = "out"
    else:
        raise WeightsError("the port's restoration net is not supported (no published file)")
    return {f"{k}.{p}": f"{v}.{p}" for k, v in layers.items() for p in ("weight", "bias")}


def convert_port(files: dict[str, Path]) -> Converted:
    nets = {}
    for net, path in files.items():
        sd = find_state_dict(safe_torch_load(path))
        keys = port_keys(net)
        unknown = sorted(set(sd) - set(keys))
        if unknown:
            raise WeightsError(f"{path}: keys the KinD-pytorch port does not have: {unknown[:5]}")
        module = _build("port", net)
        load_strict(module, {keys[k]: v.float() for k, v in sd.items()}, str(path))
        nets[net] = module
    notes = {"model": "KinD-pytorch (fenghansen) port weights: not the official ones"}
    missing = [n for n in ("decom", "adjust", "restore") if n not in nets]
    if missing:
        notes["missing"] = ", ".join(f"{n} ({PORT_FILES[n]}.pth)" for n in missing)
    return Converted(nets, preset="port", notes=notes)


# -- entry point ----------------------------------------------------------------------------
def _bundles(p: Path) -> list[Path]:
    """Checkpoint prefixes under ``p``: p itself, or every folder below holding an .index."""
    from lumen_cli.weights.tf_bundle import checkpoint_prefix

    if not p.is_dir() or (p / "checkpoint").is_file() or any(p.glob("*.index")):
        return [checkpoint_prefix(p)]
    found = sorted({checkpoint_prefix(q.parent) for q in p.rglob("*.index")})
    if not found:
        raise WeightsError(f"{p}: no TensorFlow checkpoint (*.index) or .pth file found")
    return found


def convert(sources: list[Path]) -> Converted:
    """``lumen weights convert kind SRC...``: official TF checkpoints (folders or files) or the
    PyTorch port's ``.pth`` files -> the nets of the ``paper`` / ``paper-plus`` / ``port``
    preset."""
    from lumen_cli.weights.tf_bundle import read_bundle

    pth = [p for p in sources if p.is_file() and p.suffix in (".pth", ".pt")]
    if pth:
        if len(pth) != len(sources):
            raise WeightsError("give either the port's .pth files or TF checkpoints, not both")
        files = {}
        for p in pth:
            net = next((n for n, stem in PORT_FILES.items() if p.stem == stem), None)
            if net is None:
                raise WeightsError(
                    f"{p.name}: expected the port's {', '.join(PORT_FILES.values())}.pth"
                )
            files[net] = p
        return convert_port(files)
    tensors: dict[str, np.ndarray] = {}
    for src in sources:
        for prefix in _bundles(src):
            for k, v in read_bundle(prefix).items():
                if k in tensors:
                    raise WeightsError(f"{k} is in two of the given checkpoints")
                tensors[k] = v
    return convert_official(tensors)
