"""Model cards: the ``README.md`` that ``lumen weights push`` uploads beside a weight file.

It follows the Hub's model-card conventions: a YAML header (``license``, ``library_name``,
``tags``, ``pipeline_tag: image-to-image``) read by the Hub for search and the licence badge,
then a Markdown body with what a user needs: the method and its paper, the preset, the number
of parameters, the licence, the training data and the exact recipe (from the manifest entry's
provenance), the validation metrics with their protocol, and the lumen command that uses it.
Everything comes from the manifest entry and the file itself; nothing is made up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lumen_cli.weights.manifest import WeightEntry

#: SPDX identifiers -> the Hub's licence ids (lowercase); others are declared as "other".
_HUB_LICENSES = {
    "mit": "mit",
    "apache-2.0": "apache-2.0",
    "bsd-3-clause": "bsd-3-clause",
    "cc-by-4.0": "cc-by-4.0",
    "cc-by-sa-4.0": "cc-by-sa-4.0",
    "cc-by-nc-4.0": "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0": "cc-by-nc-sa-4.0",
    "openrail": "openrail",
}
PROTOCOL = (
    "PSNR on 8-bit RGB (outputs rounded to 8 bits); SSIM with an 11x11 Gaussian window "
    "(sigma 1.5) on 8-bit values, averaged over R, G and B (`lumen eval`)."
)


def count_parameters(path: str | Path) -> int:
    """Number of values stored in a safetensors file (its parameters and buffers)."""
    from safetensors import safe_open

    n = 0
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            size = 1
            for d in f.get_slice(k).get_shape():
                size *= d
            n += size
    return n


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _front_matter(entry: WeightEntry) -> str:
    lic = _HUB_LICENSES.get(entry.license.lower()) if entry.license else None
    lines = ["---"]
    if lic:
        lines.append(f"license: {lic}")
    else:
        lines += ["license: other", f"license_name: {_yaml_str(entry.license or 'unspecified')}"]
    lines += ["library_name: lumen", "pipeline_tag: image-to-image", "tags:"]
    for tag in ("lumen", "low-light-image-enhancement", "image-enhancement", entry.method):
        lines.append(f"- {_yaml_str(tag)}")
    lines.append("---")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def render_card(entry: WeightEntry, path: str | Path, repo_id: str) -> str:
    """The model card (Markdown with a YAML header) for ``entry``'s file at ``path``."""
    from lumen_cli import __version__
    from lumen_cli.pipelines import registry

    prov = dict(entry.provenance)
    info = registry.METHODS.get(entry.method)
    title = info.title if info else entry.method
    preset = prov.get("preset", "not recorded")
    n = count_parameters(path)
    val = prov.get("val") if isinstance(prov.get("val"), dict) else {}
    use = (
        f"lumen enhance photo.jpg -o out.png --method {entry.method} "
        f"--weights {repo_id}:{entry.filename}"
    )
    out = [
        _front_matter(entry),
        "",
        f"# {entry.name}",
        "",
        f"Weights of **{entry.method}** for [lumen](https://pypi.org/project/lumen-cli/), "
        f"low-light photo enhancement: {title}.",
        "",
        "| | |",
        "|---|---|",
        f"| method | `{entry.method}` |",
        f"| preset | `{preset}` |",
        f"| parameters | {n:,} ({n / 1e6:.2f} M) |",
        f"| nets | {', '.join(entry.nets) or 'not recorded'} |",
        f"| file | `{entry.filename}`, sha256 `{entry.sha256}` |",
        f"| licence | {entry.license or 'not stated'} (of these weights; lumen's code is MIT) |",
        "",
        "## Usage",
        "",
        "```bash",
        'pip install "lumen-cli"',
        use,
        "```",
        "",
        "Add `@<commit>` after the repository name to pin a revision; lumen verifies the "
        "file's sha256 against the Hub's record before loading it.",
        "",
        "## Training data and recipe",
        "",
    ]
    keys = ("data", "val_data", "recipe", "command", "init", "steps", "synthesize", "seed", "date")
    for key in keys:
        if key in prov:
            out.append(f"- {key}: `{_fmt(prov[key])}`")
    if not any(k in prov for k in ("data", "command", "recipe")):
        out.append("- not recorded in the manifest entry")
    out += ["", "## Metrics", ""]
    if val:
        for key in ("psnr", "ssim"):
            if key in val:
                out.append(f"- {key.upper()}: {val[key]}")
        if "data" in val:
            out.append(f"- measured on: {val['data']}")
        out += ["", f"Protocol: {PROTOCOL}"]
    else:
        out.append("No validation metrics were recorded for this file.")
    out += ["", f"Card written by lumen {__version__} (`lumen weights push`).", ""]
    return "\n".join(out)
