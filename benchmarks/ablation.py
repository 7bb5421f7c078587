"""How much each ``lite`` preset's own nets change its picture (issue: honest ablations).

    python benchmarks/ablation.py                       # every method whose weights have a tone net
    python benchmarks/ablation.py --methods diff-retinex --limit 5

The ``lite`` presets of kind and diff-retinex (and any later preset with lumen's global tone
prior) start from the tone base T(x) (``lumen_cli.prior.tone``: per-channel curves predicted
from the whole photo, chroma and luma denoising) and end with the shadow finish
(``lumen_cli.prior.finish``). This script compares, on the val pairs and on the ``--lol``
night photos (no references):

- the full pipeline (the code of ``lumen enhance``, default steps, seed 0);
- the same preset with the paper's own nets bypassed: ``finish_shadows(x, T(x))``;
- for sampling methods: the full pipeline at other step counts and with another seed;
- with ``--without-prior METHOD=FILE``: the preset trained without the tone prior (e.g.
  ``recipes/lldiffusion-lite-plain.toml``), its own default steps, seed 0;
- each lumen addition a pipeline lets an option switch off (``Pipeline.ablations``), e.g.
  lighten-diffusion-lite's bright skips.

Reported: PSNR / SSIM against the references (``lumen eval`` protocol), and the mean absolute
per-pixel difference (8-bit units) and PSNR between the two renderings. It rewrites the section
between ``<!-- ablation -->`` markers of BENCHMARKS.md (``benchmarks/run.py`` keeps it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAL = ROOT.parent / "shared" / "data" / "sice" / "val"
DEFAULT_LOL = ROOT.parent / "shared" / "data" / "lol" / "eval15" / "low"
MARK = "<!-- ablation -->"


def bypassed(pipe, x):
    """The preset with its own nets bypassed: the shadow finish of the tone base T(x)."""
    from lumen_cli.prior.finish import finish_shadows
    from lumen_cli.prior.tone import curves_for, tone_noise, toned

    curves = curves_for(pipe.nets, x)
    return finish_shadows(x, toned(x, curves, noise=tone_noise(x, curves)))


def diff8(a, b) -> tuple[float, float]:
    """(mean |a − b| in 8-bit units, PSNR of a against b) after rounding both to 8 bits."""
    from lumen_cli import metrics

    qa, qb = metrics.quantize8(a.float()), metrics.quantize8(b.float())
    return float((qa - qb).abs().mean()), float(metrics.psnr(a, b))


def measure(method: str, args) -> dict:
    import torch

    from lumen_cli.api import enhance_tensor
    from lumen_cli.pipelines.registry import METHODS
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import list_images, paired_files

    pipe = E.load_pipeline(method, None, "cpu")
    if "tone" not in pipe.nets and not pipe.ablations:
        return {}
    default = METHODS[method].default_steps
    variants: dict = {"bypassed": None} if "tone" in pipe.nets else {}
    variants |= {name: {"extra": extra} for name, extra in pipe.ablations.items()}
    if method in args.without_prior:
        plain = E.load_pipeline(method, args.without_prior[method], "cpu")
        variants["without tone prior"] = {"pipe": plain}
    if default:
        variants |= {f"steps {s}": {"steps": s} for s in args.steps if s != default}
        variants["seed 1"] = {"steps": default, "seed": 1}
    rows: dict[str, list] = {}

    def add(key, value):
        rows.setdefault(key, []).append(value)

    pairs = paired_files(args.val)[: args.limit]
    lol = list_images(args.lol)[: args.limit] if args.lol and args.lol.is_dir() else []
    for split, items in (
        ("val", [(lo, hi) for lo, hi in pairs]),
        ("lol", [(p, None) for p in lol]),
    ):
        for lo, hi in items:
            x = E.read_pixels(lo)
            with torch.no_grad():
                full = enhance_tensor(pipe, x, steps=default).float()
                if hi is not None:
                    add(f"{split} full", E.score(full, E.read_pixels(hi)))
                for name, kw in variants.items():
                    if kw is None:
                        y = bypassed(pipe, x)
                    else:
                        kw = dict(kw)
                        y = enhance_tensor(kw.pop("pipe", pipe), x, **kw)
                    y = y.float()
                    add(f"{split} {name} diff", diff8(y, full))
                    if hi is not None:
                        add(f"{split} {name}", E.score(y, E.read_pixels(hi)))
            print(f"  {method} {split} {lo.name}", file=sys.stderr)
    out = {"method": method, "default_steps": default, "variants": list(variants)}
    for k, v in rows.items():
        out[k] = (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
    out["n_val"], out["n_lol"] = len(pairs), len(lol)
    return out


def markdown(results: list[dict], command: str, section: str = "ablation") -> list[str]:
    title = "## Ablation: what the `lite` presets' own nets change"
    lines = [
        title + ("" if section == "ablation" else f" ({section})"),
        "",
        f"Written by `{command}` ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC). "
        "*bypassed* = the same preset with the paper's nets skipped: the shadow finish of "
        "the tone base T(x); *without tone prior* = the preset trained by the same recipe "
        "without the tone net (the file given to --without-prior); *without X*: the same "
        "weights with the lumen addition X switched off (`Pipeline.ablations`). "
        "Quality: PSNR / SSIM on the val pairs (medians). Difference: "
        "median over the images of the mean absolute per-pixel difference from the full "
        "pipeline's output (8-bit levels) / PSNR between the two.",
        "",
        "| method | variant | val PSNR / SSIM | val difference | LOL difference |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        if not r:
            continue
        steps = f" ({r['default_steps']} steps, seed 0)" if r["default_steps"] else ""
        q = r.get("val full", (float("nan"),) * 2)
        lines.append(f"| {r['method']} | full pipeline{steps} | {q[0]:.2f} / {q[1]:.4f} | – | – |")
        for v in r["variants"]:
            q = r.get(f"val {v}", (float("nan"),) * 2)
            d = r.get(f"val {v} diff", (float("nan"),) * 2)
            e = r.get(f"lol {v} diff", (float("nan"),) * 2)
            lines.append(
                f"| {r['method']} | {v} | {q[0]:.2f} / {q[1]:.4f} | {d[0]:.2f} / {d[1]:.1f} dB "
                f"| {e[0]:.2f} / {e[1]:.1f} dB |"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=None, help="comma list (default: every method)")
    ap.add_argument("--val", type=Path, default=DEFAULT_VAL)
    ap.add_argument("--lol", type=Path, default=DEFAULT_LOL)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--steps", default="1,5,50", help="other step counts of sampling methods")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--section", default="ablation", help="name of the section --out writes")
    ap.add_argument(
        "--without-prior",
        action="append",
        default=[],
        metavar="METHOD=FILE",
        help="weights of the preset trained without the tone prior (repeatable)",
    )
    args = ap.parse_args()
    args.without_prior = dict(a.split("=", 1) for a in args.without_prior)
    args.steps = [int(s) for s in args.steps.split(",") if s]
    sys.path.insert(0, str(ROOT))
    from lumen_cli.pipelines.registry import METHODS

    methods = args.methods.split(",") if args.methods else list(METHODS)
    results = [measure(m, args) for m in methods if m != "retinex"]
    command = " ".join(["python benchmarks/ablation.py", shlex.join(sys.argv[1:])]).strip()
    text = args.out.read_text() if args.out.exists() else ""
    from sections import replace_section

    mark = MARK if args.section == "ablation" else f"<!-- {args.section} -->"
    lines = markdown(results, command, args.section)
    args.out.write_text(replace_section(text, mark, lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
