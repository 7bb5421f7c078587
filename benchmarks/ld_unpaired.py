"""lighten-diffusion's choices judged on its own training data, without references.

    python benchmarks/ld_unpaired.py --baseline OLD.safetensors [--every 7] [--out BENCHMARKS.md]
    python benchmarks/ld_unpaired.py --level     # the recipe's stage-2 level (see normal_level)

LightenDiffusion-lite is trained from ``sice/unpaired`` alone, so its choices are made there,
with figures that need no reference (sice/val is only reported, by ``benchmarks/run.py``):

- the auto-encoder: PSNR / SSIM of decode(E(y), skips(y)) against y for the normal-light frames
  y, for the shipped weights and the ``--baseline`` file (how well stage 1 learned), the share
  of y's chroma (mean max - min of RGB) it keeps, and its mean error on flat saturated patches
  of six hues on grey (``colour_patches``: no data, how faithfully it keeps a colour), and
  the bright-skip transfer (``bright_transfer``): y decoded from its own latent with the skips
  of a dark, noisy 8-bit capture of y brightened back, the decoder's task at inference with
  bright skips;
- stage 2's fidelity: on the low frames, the mean absolute difference between the LRDM's
  sampled latent (seed 0, default steps) and the target stage 2 trains it towards
  (``train.relit_target`` with the recipe's gamma 1, at ``normal_level`` of ``--level-data``,
  the recipe's normal-light photos; ``--baseline-level`` when the baseline was trained at
  another level), for both files: how well the LRDM learned what it is asked, no reference
  involved;
- the lite pipeline's lumen additions: the no-reference figures of ``benchmarks/run.py``
  (``lumen_cli.noref``: luma and chroma noise, shadow shift) of the shipped pipeline's output
  on the low frames, with the lite default and with each addition switched off
  (``Pipeline.ablations``: bright skips, chroma smoothing, dequantisation).

Frames: every ``--every``-th file of ``--data``, split by mean luma as the recipe does (low at
most 0.22, normal 0.35-0.65), at most ``--limit`` of each (see ``split_frames``). Medians.
Writes the marked section ``<!-- ld-unpaired -->`` of ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from sections import write_section  # noqa: E402

MARK = "<!-- ld-unpaired -->"
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "sice" / "unpaired"
# its high/ holds the normal-light photos whose mean latent is the recipe's stage-2 level
DEFAULT_LEVEL_DATA = HERE.parent.parent / "shared" / "data" / "sice" / "train"


def split_frames(files, every: int, limit: int) -> tuple[list, list]:
    """(low, normal) frames (1,3,H,W) in [0,1] of every ``every``-th file, by mean luma. Frames
    over 900 px: normal ones area-halved, low ones cut to their central 896 x 896, which keeps
    the 8-bit codes and JPEG blocks of the camera file (what inference meets)."""
    import torch.nn.functional as F

    from lumen_cli.ops.color import luma
    from lumen_cli.train import evaluate as E

    low, normal = [], []
    for f in files[::every]:
        x = E.read_pixels(f)
        m = float(luma(x).mean())
        if m <= 0.22 and len(low) < limit:
            h, w = x.shape[-2:]
            t, left = max(0, (h - 896) // 2), max(0, (w - 896) // 2)
            low.append(x[..., t : t + 896, left : left + 896] if max(h, w) > 900 else x)
        elif 0.35 <= m <= 0.65 and len(normal) < limit:
            if max(x.shape[-2:]) > 900:
                x = F.interpolate(x, scale_factor=0.5, mode="area")
            normal.append(x)
    return low, normal


def crop64(y: torch.Tensor) -> torch.Tensor:
    """y cropped (top-left) to a multiple of 64 in height and width."""
    h, w = (n - n % 64 for n in y.shape[-2:])
    return y[..., :h, :w]


def autoencode(decom, y: torch.Tensor) -> torch.Tensor:
    """decode(E(y), skips(y)) of y cropped to a multiple of 64, and that crop."""
    y = crop64(y)
    z, skips = decom.encode(y)
    return decom.decode(z, skips).float().clamp(0, 1), y


def bright_transfer(
    decom, y: torch.Tensor, gain=0.1, sigma=0.01, camera: bool = False
) -> torch.Tensor:
    """decode(E(y), skips of a dark capture of y brought back by 1 / ``gain``): the decoder's
    situation at inference with bright skips, on a normal frame y cropped to a multiple of
    64. The dark capture: linear light x ``gain`` (the geometric middle of the trainer's
    ``darken`` range), seeded Gaussian noise of ``sigma`` (sRGB units), 8-bit rounding; with
    ``camera``, instead, Poisson-Gaussian sensor noise (``train.synth.add_sensor_noise`` at
    the log-middle of its ranges, seeded) and a JPEG of quality 85: a dim camera JPEG."""
    from lumen_cli.methods.lighten_diffusion.pipeline import apply_exposure
    from lumen_cli.train.synth import add_sensor_noise, jpeg_roundtrip

    dark = apply_exposure(y, gain)
    if camera:
        torch.manual_seed(0)
        dark = add_sensor_noise(dark, p=1.0, shot=(4.5e-4, 4.5e-4), read=(1e-6, 1e-6))
        dark = jpeg_roundtrip(dark, (85, 85))
    else:
        g = torch.Generator().manual_seed(0)
        noisy = (dark + sigma * torch.randn(y.shape, generator=g)).clamp(0, 1)
        dark = torch.round(noisy * 255) / 255
    skips = decom.encode(apply_exposure(dark, 1 / gain))[1]
    return decom.decode(decom.encode(y)[0], skips).float().clamp(0, 1)


PATCH_COLOURS = {
    "red": (0.7, 0.15, 0.15),
    "yellow": (0.7, 0.7, 0.15),
    "green": (0.15, 0.7, 0.15),
    "cyan": (0.15, 0.7, 0.7),
    "blue": (0.15, 0.15, 0.7),
    "magenta": (0.7, 0.15, 0.7),
}


def chroma(x: torch.Tensor) -> float:
    """Mean over pixels of max - min of RGB."""
    return float((x.amax(1) - x.amin(1)).mean())


def colour_patches(decom) -> dict[str, float]:
    """Per hue of PATCH_COLOURS: mean |decode(E(p), skips(p)) - colour| (8-bit levels) over the
    centre of a 64x64 patch of that colour on a 128x128 grey (0.45) image p."""
    errs = {}
    for name, c in PATCH_COLOURS.items():
        p = torch.full((1, 3, 128, 128), 0.45)
        p[..., 32:96, 32:96] = torch.tensor(c)[:, None, None]
        z, skips = decom.encode(p)
        out = decom.decode(z, skips).float().clamp(0, 1)
        errs[name] = float((out - p)[..., 40:88, 40:88].abs().mean()) * 255
    return errs


def target_gap(pipe, low, level: float, steps: int = 20) -> float:
    """Median over the low frames of mean |sampled latent - relit target| (see the docstring)."""
    from lumen_cli.methods.lighten_diffusion.pipeline import sample_latent
    from lumen_cli.methods.lighten_diffusion.train import relit_target

    decom, unet = pipe.nets["decom"], pipe.nets["unet"]
    gaps = []
    for x in low:
        z = decom.encode(crop64(x))[0].float()
        _, lum = decom.retinex(z)
        target = relit_target(z, lum.float(), level, 1.0)
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
        sample = sample_latent(unet, 2 * z - 1, noise, steps).float()
        gaps.append(float((sample - target).abs().mean()))
    return statistics.median(gaps)


def normal_level(data: Path) -> float:
    """Mean ``latent_anchor`` (gamma 2.2) over the normal-light photos of ``data`` as the
    trainer finds them (``unpaired_files``: ``data/high`` or ``data/normal``, e.g. sice/train's
    references, else a flat folder's normal frames split by mean luma): the fixed level of
    stage 2."""
    from lumen_cli.methods.lighten_diffusion.train import latent_anchor
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import unpaired_files

    _, normals = unpaired_files(data)
    with torch.no_grad():
        return statistics.mean(float(latent_anchor(E.read_pixels(f), 2.2).mean()) for f in normals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="lighten-diffusion weights (default: shipped)")
    ap.add_argument("--baseline", help="weights to compare with (required unless --level)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--every", type=int, default=7)
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None, help="write the section into this file")
    ap.add_argument(
        "--level",
        action="store_true",
        help="only print the recipe's stage-2 level: the mean latent_anchor of --level-data",
    )
    ap.add_argument(
        "--level-data",
        type=Path,
        default=DEFAULT_LEVEL_DATA,
        help="the normal-light photos that set stage 2's level, found as the trainer finds "
        "them: DIR/high (or DIR/normal), else a flat folder's normal frames",
    )
    ap.add_argument(
        "--baseline-level",
        type=float,
        default=None,
        help="the level the baseline's stage 2 was trained at (default: --level-data's)",
    )
    args = ap.parse_args()
    if args.level:
        print(f"{normal_level(args.level_data):.4f}")
        return
    if not args.baseline:
        ap.error("--baseline is required (unless --level)")

    from lumen_cli import metrics, noref
    from lumen_cli.api import enhance_tensor
    from lumen_cli.pipelines.load import load_pipeline
    from lumen_cli.train.data import list_images

    torch.set_grad_enabled(False)
    pipe = load_pipeline("lighten-diffusion", args.weights)
    base = load_pipeline("lighten-diffusion", args.baseline)
    low, normal = split_frames(list_images(args.data), args.every, args.limit)
    med = statistics.median
    ae = {}
    for name, p in (("baseline", base), ("weights", pipe)):
        pairs = [autoencode(p.nets["decom"], y) for y in normal]
        scores = [(float(metrics.psnr(o, y)), float(metrics.ssim(o, y))) for o, y in pairs]
        kept = med(chroma(o) / max(chroma(y), 1e-6) for o, y in pairs)
        patches = colour_patches(p.nets["decom"])
        moved = [(bright_transfer(p.nets["decom"], y), y) for _, y in pairs]
        bright = [(float(metrics.psnr(o, y)), float(metrics.ssim(o, y))) for o, y in moved]
        cam = [(bright_transfer(p.nets["decom"], y, camera=True), y) for _, y in pairs]
        camera = [(float(metrics.psnr(o, y)), float(metrics.ssim(o, y))) for o, y in cam]
        ae[name] = (
            med(s[0] for s in scores),
            med(s[1] for s in scores),
            kept,
            patches,
            (med(s[0] for s in bright), med(s[1] for s in bright)),
            (med(s[0] for s in camera), med(s[1] for s in camera)),
        )
    level = normal_level(args.level_data)
    base_level = level if args.baseline_level is None else args.baseline_level
    gap = {"baseline": target_gap(base, low, base_level), "weights": target_gap(pipe, low, level)}
    skips = {}
    for label, extra in {"lite default": {}, **type(pipe).ablations}.items():
        rows = []
        for x in low:
            y = enhance_tensor(pipe, x, extra=extra)
            sig = noref.noise_sigma(y)[0]
            rows.append((float(sig[0]), float(sig[1:].mean()), float(noref.shadow_shift(y, x)[0])))
        skips[label] = tuple(med(r[i] for r in rows) for i in range(3))

    command = " ".join(["python benchmarks/ld_unpaired.py", shlex.join(sys.argv[1:])]).strip()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    weights = f"`{args.weights}`" if args.weights else "shipped"
    lines = [
        "## lighten-diffusion: its choices on its own unpaired training frames",
        "",
        f"Written by `{command}` ({when}): every {args.every}th frame of `{args.data}`, "
        f"{len(normal)} normal-light (mean luma 0.35-0.65) and {len(low)} low-light (at most "
        "0.22) frames, no references; medians. Auto-encoder: decode(E(y), skips(y)) against y "
        f"for the normal frames, weights {weights} against `{args.baseline}`; stage 2's "
        f"target gap: median mean |sampled latent - relit target (level {level:.4f}, the mean "
        f"latent of `{args.level_data}`'s normal-light photos; baseline {base_level:.4f})| on "
        "the low frames. "
        "Bright-skip transfer: decode(E(y), skips of a dark capture of y (linear x 0.1, "
        "noise 0.01, 8 bits) brightened x 10) against y, the decoder's task at inference; "
        "camera-like: the same with sensor noise (shot 4.5e-4, read 1e-6) and a JPEG of "
        "quality 85 instead. "
        "Last table: the no-reference figures (as the LOL table) of the output on the low "
        "frames (central 896 px, the camera's 8-bit JPEG codes), with the lite pipeline's "
        "default and with each of its lumen additions off.",
        "",
        "| weights | auto-encoder of normal frames: PSNR | SSIM | chroma kept "
        "| saturated patches: error (8-bit) | bright-skip transfer: PSNR / SSIM "
        "| camera-like: PSNR / SSIM | low frames: sampled latent - stage 2's target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("baseline", f"`{args.baseline}`"), ("weights", weights)):
        psnr, ssim, kept, patches, bright, camera = ae[key]
        lines.append(
            f"| {label} | {psnr:.2f} | {ssim:.4f} | {100 * kept:.0f} % "
            f"| {statistics.mean(patches.values()):.1f} | {bright[0]:.2f} / {bright[1]:.4f} "
            f"| {camera[0]:.2f} / {camera[1]:.4f} | {gap[key]:.4f} |"
        )
    lines += [
        "",
        "Auto-encoder error on each saturated patch (8-bit levels, mean |output - colour|):",
        "",
        "| weights | " + " | ".join(PATCH_COLOURS) + " |",
        "|---|" + "---:|" * len(PATCH_COLOURS),
    ]
    for key, label in (("baseline", f"`{args.baseline}`"), ("weights", weights)):
        lines.append(f"| {label} | " + " | ".join(f"{v:.1f}" for v in ae[key][3].values()) + " |")
    lines += [
        "",
        "| low frames | luma noise | chroma noise | shadow shift |",
        "|---|---:|---:|---:|",
    ]
    for label, (noise_y, noise_c, shift) in skips.items():
        lines.append(f"| {label} | {noise_y:.2f} | {noise_c:.2f} | {shift:.2f} |")
    print("\n".join(lines))
    if args.out:
        write_section(args.out, MARK, lines)


if __name__ == "__main__":
    main()
