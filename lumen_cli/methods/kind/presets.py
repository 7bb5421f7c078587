"""KinD's presets: net name -> (arch name in ``lumen_cli.nets.registry``, config).

``paper`` (KinD) and ``paper-plus`` (KinD++) are the authors' architectures, ``port`` the nets
of the PyTorch port fenghansen/KinD-pytorch, ``lite`` lumen's compact preset with residual
(identity-start) heads, a ratio estimator and the global tone prior's curve net.
"""

from __future__ import annotations

from typing import Any

from lumen_cli.prior.tone import TONE_NET

TARGET_MEAN_L = 0.42  # median mean brightness of the sice/train references
_LITE_RESTORE = [16, 32, 64, 128, 256]
_PAPER_RESTORE = [32, 64, 128, 256, 512]


def _preset(
    decom_w: int, restore_w: list[int], adjust_w: int, residual: bool, tone: bool = False
) -> dict[str, tuple[str, dict]]:
    return ({"tone": TONE_NET} if tone else {}) | {
        "decom": ("kind.decom", {"width": decom_w, "residual": residual}),
        "restore": ("kind.restore", {"widths": restore_w, "convs": 2, "residual": residual}),
        "adjust": (
            "kind.adjust",
            {"width": adjust_w, "convs": 3, "residual": residual}
            | ({"base": "odds"} if residual else {}),
        ),
        "ratio": ("kind.ratio", {"width": 16, "size": 64, "target": TARGET_MEAN_L}),
    }


def _official_preset(restore: tuple[str, dict] | None, port: bool = False) -> dict:
    """The authors' nets: no ratio estimator, no tone net; the adjustment net's last conv is
    followed by LeakyReLU before the sigmoid (official) or not (the port)."""
    adjust = {"width": 32, "convs": 3, "out_act": not port} | ({"slope": 0.01} if port else {})
    return (
        {"decom": ("kind.decom", {"width": 32} | ({"port": True} if port else {}))}
        | ({"restore": restore} if restore else {})
        | {"adjust": ("kind.adjust", adjust)}
    )


PRESETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    # decom 235,876 + restore 7,760,739 + adjust 19,393 = 8,016,008 (official KinD)
    "paper": _official_preset(("kind.restore", {"widths": _PAPER_RESTORE, "convs": 2})),
    # restore 8,023,079 numbers with the BatchNorm statistics: 8,278,348 (official KinD++)
    "paper-plus": _official_preset(("kind.restore_msia", {})),
    "port": _official_preset(None, port=True),  # fenghansen/KinD-pytorch: no restore file
    # tone 175,083 + decom 59,316 + restore 1,941,427 + adjust 19,393 + ratio 14,547
    # = 2,209,766
    "lite": _preset(16, _LITE_RESTORE, 32, residual=True, tone=True),
}
