"""Where lighten-diffusion-lite loses quality on sice/val: its latent or its decoder.

    python benchmarks/ld_gap.py [--weights FILE] [--limit K] [--out BENCHMARKS.md]

LightenDiffusion renders z^ (the LRDM's sample of the low image's relit latent) with the CTDN
decoder, whose skips are the low image's own pyramid features. For each val pair (x low, y
reference), cropped to a multiple of 64, this script scores (the ``lumen eval`` metrics,
reporting only: nothing here feeds training or a choice of the shipped recipe):

- output, official skips: decode(z^, skips(x)), the paper's rendering of the LRDM sample z^
  (whole image, default steps, seed 0);
- output, bright skips: decode(z^, skips(g x)), the lite pipeline's rendering (g: the gain z^
  implies, ``pipeline.skip_gain``);
- output, exposure oracle: the bright-skips output under the one linear-light gain giving y's
  mean luma;
- oracle latent: decode(E(y), skips(x)), the reference's own latent through the low image's
  skips: the most a perfect LRDM could give with this decoder;
- auto-encoder: decode(E(y), skips(y)), the reference through its own encoder and decoder:
  the decoder's ceiling when its skips are not dark.

and the mean saturation (max - min over max of RGB) of each rendering beside the reference's.
Writes the marked section ``<!-- ld-gap -->`` of ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ceiling import exposure_oracle  # noqa: E402
from run import DEFAULT_VAL  # noqa: E402
from sections import write_section  # noqa: E402

MARK = "<!-- ld-gap -->"
ROWS = (
    "output, official skips",
    "output, bright skips",
    "output, exposure oracle",
    "oracle latent",
    "auto-encoder",
)


def saturation(img: torch.Tensor) -> float:
    hi, lo = img.amax(1), img.amin(1)
    return float(((hi - lo) / hi.clamp_min(1e-3)).mean())


def measure(pipe, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """The four renderings of one pair x, y (1,3,H,W) in [0,1], H and W multiples of 64."""
    from lumen_cli.methods.lighten_diffusion.pipeline import (
        apply_exposure,
        sample_latent,
        skip_gain,
    )

    decom, unet = pipe.nets["decom"], pipe.nets["unet"]
    z_x, skips_x = decom.encode(x)
    z_y, skips_y = decom.encode(y)
    noise = torch.randn(z_x.shape, generator=torch.Generator().manual_seed(seed))
    z_hat = sample_latent(unet, 2 * z_x - 1, noise, pipe.default_steps)
    _, skips_g = decom.encode(apply_exposure(x, skip_gain(z_hat, z_x)))
    out = decom.decode(z_hat, skips_g).clamp(0, 1)
    return {
        "output, official skips": decom.decode(z_hat, skips_x).clamp(0, 1),
        "output, bright skips": out,
        "output, exposure oracle": exposure_oracle(out, y).clamp(0, 1),
        "oracle latent": decom.decode(z_y, skips_x).clamp(0, 1),
        "auto-encoder": decom.decode(z_y, skips_y).clamp(0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="lighten-diffusion weights (default: shipped)")
    ap.add_argument("--val", type=Path, default=DEFAULT_VAL)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the section into this file")
    args = ap.parse_args()

    from lumen_cli import metrics
    from lumen_cli.pipelines.load import load_pipeline
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    torch.set_grad_enabled(False)
    pipe = load_pipeline("lighten-diffusion", args.weights)
    scores = {k: [] for k in ROWS}
    sats = {k: [] for k in (*ROWS, "reference")}
    pairs = paired_files(args.val)[: args.limit]
    for lo, hi in pairs:
        x, y = E.read_pixels(lo).float(), E.read_pixels(hi).float()
        h, w = (n - n % 64 for n in x.shape[-2:])
        x, y = x[..., :h, :w], y[..., :h, :w]
        for k, img in measure(pipe, x, y).items():
            scores[k].append((float(metrics.psnr(img, y)), float(metrics.ssim(img, y))))
            sats[k].append(saturation(img))
        sats["reference"].append(saturation(y))
        print(f"{lo.name}: " + ", ".join(f"{k} {v[-1][0]:.2f}" for k, v in scores.items()))

    med = lambda v: float(torch.tensor(v).median())  # noqa: E731
    command = " ".join(["python benchmarks/ld_gap.py", shlex.join(sys.argv[1:])]).strip()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## lighten-diffusion: its latent or its decoder",
        "",
        f"Written by `{command}` ({when}): {len(pairs)} `{args.val}` pairs cropped to a "
        "multiple of 64, weights "
        f"{'`' + args.weights + '`' if args.weights else 'shipped'}, seed 0, fp32, default "
        "steps; medians over the pairs (reporting only). Oracle rows peek at the reference: "
        "*oracle latent* decodes the reference's own latent with the low image's skips (a "
        "perfect LRDM), *auto-encoder* decodes it with the reference's skips (the decoder's "
        "ceiling). Saturation: mean (max - min) / max of RGB.",
        "",
        "| rendering | PSNR | SSIM | saturation |",
        "|---|---:|---:|---:|",
    ]
    for k in ROWS:
        p, s = med([v[0] for v in scores[k]]), med([v[1] for v in scores[k]])
        lines.append(f"| {k} | {p:.2f} | {s:.4f} | {med(sats[k]):.3f} |")
    lines.append(f"| reference | - | - | {med(sats['reference']):.3f} |")
    print("\n".join(lines))
    if args.out:
        write_section(args.out, MARK, lines)


if __name__ == "__main__":
    main()
