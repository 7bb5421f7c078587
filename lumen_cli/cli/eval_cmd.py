"""``lumen eval``: score a method on paired images, or score existing outputs.

No torch at import time.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from lumen_cli.cli.choices import Precision, device_option, method_option, precision_option

EVAL_HELP = (
    "Measure a method on paired images (DIR/low, DIR/high), or score existing outputs.\n\n"
    "lumen eval --method kind --data DIR [--steps N] [--limit K] [--save-dir OUT]\n\n"
    "lumen eval --pred OUTPUTS --gt REFERENCES\n\n"
    "Protocol: each low/ image is enhanced by the same code as `lumen enhance` (seed 0) and "
    "compared with the high/ image of the same name. PSNR on 8-bit RGB (both images rounded "
    "to 8 bit; peak 255; MSE over all pixels and channels). SSIM: 11x11 Gaussian window, "
    "sigma 1.5, K1=0.01, K2=0.03, per RGB channel over the valid region, then averaged (as "
    "skimage with gaussian_weights=True, use_sample_covariance=False). Scores are per image; "
    "the table gives mean and median. Seconds: enhancement alone (no decoding or writing), "
    "per image. LPIPS only when its weights are present locally; otherwise it is reported "
    "as unavailable."
)


def _fmt(v, nd=4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{nd}f}"


def eval_cmd(
    method: str = method_option(None, "Method to measure (see 'lumen methods')."),
    data: Path = typer.Option(None, "--data", help="Folder with low/ and high/."),
    pred: Path = typer.Option(None, "--pred", help="Folder of existing outputs to score."),
    gt: Path = typer.Option(None, "--gt", help="Reference folder for --pred."),
    steps: int = typer.Option(None, "--steps", help="Sampling steps (diffusion methods)."),
    limit: int = typer.Option(None, "--limit", help="Only the first K pairs (sorted by name)."),
    save_dir: Path = typer.Option(None, "--save-dir", help="Write the outputs here (PNG)."),
    weights: Path = typer.Option(
        None, "--weights", help="A lumen .safetensors file, or ORG/REPO[@REVISION][:FILE]."
    ),
    device: str = device_option("auto: CUDA, then MPS, then CPU (as lumen enhance)."),
    precision: Precision = precision_option("As for lumen enhance."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling noise."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout (per image + summary)."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout (one row per image)."),
) -> None:
    from lumen_cli.errors import LumenError, UsageError
    from lumen_cli.train import evaluate as E

    try:
        if (pred is None) != (gt is None):
            raise UsageError("--pred and --gt go together")
        if pred is None and (method is None or data is None):
            raise UsageError("give --method and --data, or --pred and --gt")
        if pred is not None and method is not None:
            raise UsageError("--pred/--gt score existing outputs; leave out --method")
        ok, lp_note = E.lpips_status()
        lp_fn = E.lpips_scorer() if ok else None
        if pred is not None:
            records = E.evaluate_folders(pred, gt, limit, lp_fn)
            label = f"{pred} vs {gt}"
        else:
            from lumen_cli.train.data import paired_files

            try:
                pairs = paired_files(data)[:limit]
            except FileNotFoundError as e:
                raise UsageError(str(e)) from None
            dev = _device(device)
            pipe = E.load_pipeline(method, weights, dev)
            show = sys.stderr.isatty() and not (as_json or as_csv)

            def on_image(rec, i, n):
                if show:
                    typer.echo(
                        f"[{i}/{n}] {rec.name}: {rec.psnr:.2f} dB {rec.ssim:.4f} "
                        f"{rec.seconds:.2f}s",
                        err=True,
                    )

            records = E.evaluate_method(
                pipe,
                pairs,
                steps=steps,
                seed=seed,
                precision=precision,
                save_dir=save_dir,
                on_image=on_image,
                lpips_fn=lp_fn,
            )
            label = f"{method} on {data}" + (f" ({steps} steps)" if steps else "")
    except LumenError as e:
        typer.echo(f"lumen eval: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    summ = E.summarize(records)
    summ["lpips"] = "computed" if lp_fn else lp_note
    if as_json:
        typer.echo(
            json.dumps(
                {"what": label, "summary": summ, "images": E.records_as_dicts(records)}, indent=2
            )
        )
        return
    if as_csv:
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["name", "psnr", "ssim", "seconds", "lpips"])
        for r in records:
            w.writerow(
                [
                    r.name,
                    f"{r.psnr:.4f}",
                    f"{r.ssim:.6f}",
                    "" if r.seconds is None else f"{r.seconds:.4f}",
                    "" if r.lpips is None else f"{r.lpips:.6f}",
                ]
            )
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"lumen eval: {label}")
    for c in ("images", "PSNR mean", "PSNR median", "SSIM mean", "SSIM median", "s/image"):
        t.add_column(c, justify="right")
    t.add_row(
        str(summ["n"]),
        _fmt(summ["psnr_mean"], 2),
        _fmt(summ["psnr_median"], 2),
        _fmt(summ["ssim_mean"]),
        _fmt(summ["ssim_median"]),
        _fmt(summ["seconds_mean"], 3),
    )
    con = Console()
    con.print(t)
    con.print(f"LPIPS: {_fmt(summ['lpips_mean']) if 'lpips_mean' in summ else lp_note}")


def _device(spec: str):
    try:
        from lumen_cli.devices import pick_device
    except ImportError:
        import torch

        return torch.device("cpu" if spec == "auto" else spec)
    return pick_device(spec)


def register(app: typer.Typer) -> None:
    """Mount ``lumen eval``."""
    app.command("eval", help=EVAL_HELP)(eval_cmd)
