"""What limits the learned methods on sice/val: oracles that peek at the reference.

    python benchmarks/ceiling.py                      # kind and diff-retinex (20 steps)
    python benchmarks/ceiling.py --methods kind --train-every 7

The methods' ``lite`` presets start from a global tone prior T(x) (per-image, per-channel
curves predicted from the low image, ``lumen_cli.prior.tone``) and let their restoration /
diffusion nets change only detail. For each method this script measures, on every val pair:

- output: the method itself (the ``lumen eval`` protocol, same ``enhance_tensor``);
- output, exposure oracle: the output under the one linear-light gain that gives it the
  reference's mean luma (how much a perfect exposure guess would add);
- tone base: T(x) alone, with the method's own curves (its chroma and luma denoising
  included), i.e. what the nets start from;
- tone oracle: T(x) with the curves of the same family fitted to the reference
  (``nets.tone.fit_curves``, least squares): the best any curve predictor could do;
- the output's SSIM factors (``metrics.ssim_components``): luminance, contrast, structure,
  and the mean local standard deviation of output and reference.

- brightness: the mean luma of output and reference, and how well the reference's mean luma
  can be predicted from the low image at all (``brightness_predictability``: ridge regression
  on histogram features of the low frame, cross-validated over training *scenes*, then fitted
  on all training pairs and tried on val), beside a constant guess (the training references'
  mean). A reference brightness that no feature of the input predicts is an error no blind
  method can remove, and the exposure oracle's gain is then out of reach.

With ``--train-every N`` the output, the tone base and the tone oracle are also measured on
every N-th training pair: when tone base and oracle agree there, the curve net fits its
training data, and the gap on val is one of generalisation to new scenes; the output there
shows how far the whole method gets on pairs it was trained on. Writes benchmarks/CEILING.md
(means over images).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sice"
FIT_STRIDE = 2  # fit_curves sees every 2nd pixel in each direction (a quarter of them)
CV_FOLDS = 8  # brightness_predictability: folds over training scenes
RIDGE = (1.0, 10.0, 100.0, 1000.0)  # ridge strengths tried (the best cross-validated is used)


def low_features(x: torch.Tensor) -> list[float]:
    """Histogram features of a low image (1,3,H,W) in [0,1]: luma mean and std, log mean linear
    luma, max-RGB percentiles (1 ... 99.9), the shares of max-RGB above 0.9 and 0.5, and the
    mean chroma spread (max - min RGB). What a brightness guess could use without a reference."""
    from lumen_cli.ops.color import luma

    y = luma(x.double())
    m = x.double().amax(1).flatten()
    q = torch.tensor([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999], dtype=torch.float64)
    pct = torch.quantile(m[:: max(1, m.numel() // 1_000_000)], q)
    spread = (x.double().amax(1) - x.double().amin(1)).mean()
    return [
        float(y.mean()),
        float(y.std()),
        float(torch.log((y**2.2).mean() + 1e-4)),
        *pct.tolist(),
        float((m > 0.9).double().mean()),
        float((m > 0.5).double().mean()),
        float(spread),
    ]


def ridge_fit(x, y, lam: float):
    """(predict function) of ridge regression on standardised features; numpy arrays."""
    import numpy as np

    mu, sd = x.mean(0), x.std(0) + 1e-9
    a = (x - mu) / sd
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - y.mean()))
    return lambda z: ((z - mu) / sd) @ w + y.mean()


def scene_cv(x, y, groups, lam: float, folds: int = CV_FOLDS, seed: int = 0):
    """Out-of-fold ridge predictions with whole groups (scenes) held out together."""
    import numpy as np

    scenes = np.unique(groups)
    np.random.default_rng(seed).shuffle(scenes)
    pred = np.zeros_like(y)
    for held in np.array_split(scenes, min(folds, len(scenes))):
        m = np.isin(groups, held)
        pred[m] = ridge_fit(x[~m], y[~m], lam)(x[m])
    return pred


def r2(pred, y) -> float:
    return float(1.0 - ((pred - y) ** 2).mean() / y.var())


def rmse(pred, y) -> float:
    return float((((pred - y) ** 2).mean()) ** 0.5)


def scene_of(name: str) -> str:
    """SICE file names are <scene>_<frame>.jpg; other names count as their own scene."""
    return name.split("_")[0] if "_" in name else name


def brightness_predictability(data: Path) -> dict:
    """How predictable the reference's mean luma is from the low image (see the docstring)."""
    import numpy as np

    from lumen_cli.ops.color import luma
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    def table(split: str):
        pairs = paired_files(data / split)
        feats, target, groups = [], [], []
        for lo, hi in pairs:
            feats.append(low_features(E.read_pixels(lo)))
            target.append(float(luma(E.read_pixels(hi).double()).mean()))
            groups.append(scene_of(lo.name))
        return np.array(feats), np.array(target), np.array(groups)

    xt, yt, gt = table("train")
    xv, yv, _ = table("val")
    cv = {lam: scene_cv(xt, yt, gt, lam) for lam in RIDGE}
    lam = max(cv, key=lambda k: r2(cv[k], yt))
    pv = ridge_fit(xt, yt, lam)(xv)
    const = np.full_like(yv, yt.mean())
    return {
        "n_train": len(yt),
        "n_scenes": len(np.unique(gt)),
        "ridge": lam,
        "cv_r2": r2(cv[lam], yt),
        "cv_rmse": rmse(cv[lam], yt),
        "train_sd": float(yt.std()),
        "val_rmse_ridge": rmse(pv, yv),
        "val_rmse_const": rmse(const, yv),
        "val_ref_mean": float(yv.mean()),
        "train_ref_mean": float(yt.mean()),
    }


def exposure_oracle(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """out under the linear-light gain (sRGB ~ gamma 2.2) that matches ref's mean luma."""
    from lumen_cli.ops.color import luma
    from lumen_cli.prior.tone import match_luma

    return match_luma(out, luma(ref.float()).mean((1, 2, 3)))


def tone_pair(pipe, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(SSIM of T(x) with the method's curves, SSIM of T(x) with oracle curves)."""
    from lumen_cli import metrics
    from lumen_cli.nets.tone import fit_curves
    from lumen_cli.prior.tone import curves_for, tone_noise, toned

    def score(curves):
        return float(metrics.ssim(toned(x, curves, noise=tone_noise(x, curves)), y))

    k = pipe.nets["tone"].knots
    s = FIT_STRIDE
    oracle = fit_curves(x[..., ::s, ::s], y[..., ::s, ::s], knots=k).float()
    return score(curves_for(pipe.nets, x)), score(oracle)


def measure(method: str, data: Path, steps: int | None, train_every: int) -> dict:
    from lumen_cli import metrics
    from lumen_cli.api import enhance_tensor
    from lumen_cli.ops.color import luma
    from lumen_cli.train import evaluate as E
    from lumen_cli.train.data import paired_files

    pipe = E.load_pipeline(method, None, "cpu")
    if "tone" not in pipe.nets:
        raise SystemExit(f"{method}: its weights have no tone net; nothing to measure")
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(float(value))

    for lo, hi in paired_files(data / "val"):
        x, y = E.read_pixels(lo), E.read_pixels(hi)
        with torch.no_grad():
            out = enhance_tensor(pipe, x, steps=steps).float().clamp(0, 1)
            add("output", metrics.ssim(out, y))
            add("output_psnr", metrics.psnr(out, y))
            add("exposure_oracle", metrics.ssim(exposure_oracle(out, y), y))
            add("luma_out", luma(out.double()).mean())
            add("luma_ref", luma(y.double()).mean())
            base, oracle = tone_pair(pipe, x, y)
            add("tone_base", base)
            add("tone_oracle", oracle)
            for k, v in metrics.ssim_components(out, y).items():
                add(k, v)
        print(f"  {method} {lo.name}: {rows['output'][-1]:.4f}", file=sys.stderr)
    if train_every:
        for lo, hi in paired_files(data / "train")[::train_every]:
            x, y = E.read_pixels(lo), E.read_pixels(hi)
            with torch.no_grad():
                out = enhance_tensor(pipe, x, steps=steps).float().clamp(0, 1)
                base, oracle = tone_pair(pipe, x, y)
            add("train_output", metrics.ssim(out, y))
            add("train_tone_base", base)
            add("train_tone_oracle", oracle)
    lerr = [(a - b) ** 2 for a, b in zip(rows["luma_out"], rows["luma_ref"])]
    return {k: sum(v) / len(v) for k, v in rows.items()} | {
        "luma_rmse": (sum(lerr) / len(lerr)) ** 0.5,
        "n_val": len(rows["output"]),
        "n_train": len(rows.get("train_tone_base", [])),
    }


def brightness_lines(b: dict, results: dict[str, dict]) -> list[str]:
    """The brightness section of CEILING.md from ``brightness_predictability`` and measure()."""
    verdict = (
        "the low frame's histogram says almost nothing about how bright its reference is"
        if b["cv_r2"] < 0.2
        else "the low frame's histogram predicts part of the reference's brightness"
    )
    methods = ", ".join(f"{m} {r['luma_rmse']:.4f}" for m, r in results.items())
    return [
        "",
        "Can the reference's brightness be known from the input? Mean luma of the references: "
        f"train {b['train_ref_mean']:.3f} (sd {b['train_sd']:.4f}, {b['n_train']} pairs of "
        f"{b['n_scenes']} scenes), val {b['val_ref_mean']:.3f}.",
        "",
        "| guess of the reference's mean luma | train, scene-held-out CV | val |",
        "|---|---:|---:|",
        f"| constant (the training references' mean) | RMSE {b['train_sd']:.4f} (their spread) | "
        f"RMSE {b['val_rmse_const']:.4f} |",
        f"| ridge (λ {b['ridge']:g}) on 14 histogram features of the low frame | RMSE "
        f"{b['cv_rmse']:.4f} (R² {b['cv_r2']:.3f}) | RMSE {b['val_rmse_ridge']:.4f} |",
        "",
        f"- {verdict} (scene-held-out R² {b['cv_r2']:.3f}); the outputs' mean luma misses "
        f"the val references' by RMSE {methods}. The exposure oracle's gain needs that "
        "brightness, which no blind method is given.",
    ]


def markdown(results: dict[str, dict], args, command: str, bright: dict | None = None) -> str:
    from run import machine  # benchmarks/run.py, beside this script

    m = machine()
    lines = [
        "# What limits the learned methods on sice/val",
        "",
        "Written by `benchmarks/ceiling.py`; do not edit by hand: re-run the script.",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {m['cpu']}, torch {m['torch']}, CPU capability {m['isa']} (precision "
        f"`auto` = {m['auto_precision'].replace('torch.', '')})",
        f"- data: `{args.data}` (val; train every {args.train_every}th pair)"
        if args.train_every
        else f"- data: `{args.data}/val`",
        f"- command: `{command}`",
        "",
        "SSIM (the `lumen eval` protocol), means over the val pairs. The *oracle* columns peek "
        "at the reference and are not methods: they bound what a perfect part could add.",
        "",
        "| method | output | output, exposure oracle | tone base T(x) | T(x), oracle curves "
        "| luminance | contrast | structure | local std out / ref |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in results.items():
        lines.append(
            f"| {m} | {r['output']:.4f} ({r['output_psnr']:.2f} dB) | "
            f"{r['exposure_oracle']:.4f} | {r['tone_base']:.4f} | {r['tone_oracle']:.4f} | "
            f"{r['luminance']:.4f} | {r['contrast']:.4f} | {r['structure']:.4f} | "
            f"{r['std_pred']:.1f} / {r['std_gt']:.1f} |"
        )
    lines.append("")
    for name, r in results.items():
        worst = min(("luminance", "contrast", "structure"), key=lambda k: r[k])
        curves = r["tone_oracle"] - r["tone_base"]
        exposure = r["exposure_oracle"] - r["output"]
        lines.append(
            f"- {name}: perfect curves would lift T(x) by {curves:+.4f} and a perfect exposure "
            f"guess the output by {exposure:+.4f}; the nets on top of T(x) add "
            f"{r['output'] - r['tone_base']:+.4f}; of SSIM's factors, {worst} is furthest from 1."
        )
    if any(r["n_train"] for r in results.values()):
        lines += [
            "",
            "On training pairs (the nets' own data): the whole method, and its tone base T(x) "
            "with its own and with oracle curves:",
            "",
            "| method | pairs | output | tone base T(x) | T(x), oracle curves |",
            "|---|---:|---:|---:|---:|",
        ]
        for m, r in results.items():
            if r["n_train"]:
                lines.append(
                    f"| {m} | {r['n_train']} | {r['train_output']:.4f} | "
                    f"{r['train_tone_base']:.4f} | {r['train_tone_oracle']:.4f} |"
                )
    if bright is not None:
        lines += brightness_lines(bright, results)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="kind,diff-retinex")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="holds val/ (and train/)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion)")
    ap.add_argument("--train-every", type=int, default=0, help="also every N-th train pair")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "CEILING.md")
    args = ap.parse_args(argv)
    command = "python benchmarks/ceiling.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    results = {
        m: measure(m, args.data, args.steps, args.train_every) for m in args.methods.split(",")
    }
    bright = brightness_predictability(args.data) if (args.data / "train").is_dir() else None
    text = markdown(results, args, command.strip(), bright)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
