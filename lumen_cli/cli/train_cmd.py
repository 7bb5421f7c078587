"""``lumen train`` (train a method, stage by stage) and ``lumen train export`` (weights file).

No torch at import time: the engine is imported inside the command functions.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import typer

TRAIN_HELP = (
    "Train a method's nets on your images, stage by stage, into a run directory.\n\n"
    "Paired data: DIR/low and DIR/high, files matched by name. Unpaired stages: DIR/low "
    "(+ DIR/normal or --normal), or one flat folder split by brightness. Settings come from "
    "the method's stage defaults, then --config FILE.toml, then --set key=value (e.g. "
    "--set lr=1e-4, --set restore.steps=4000, --set preset=paper, "
    "--set nets.decom.width=32).\n\n"
    "Stops cleanly (with a checkpoint) at --max-steps, --time-budget or Ctrl-C; --resume "
    "continues exactly. Multi-process: torchrun --nproc_per_node N -m lumen_cli train ...\n\n"
    "Then: lumen train export RUN_DIR -o NAME.safetensors"
)


def _progress_display(quiet: bool):
    """A rich progress bar on stderr when it is a terminal; None otherwise."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, step: int, total: int, rec: dict) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total, info="")
        info = " ".join(f"{k} {v:.4g}" for k, v in rec.items() if k in ("loss", "lr"))
        prog.update(tasks[stage], completed=step, info=info)

    return prog, update


def train(
    ctx: typer.Context,
    method: str = typer.Option(None, "--method", "-m", help="Method to train (lumen methods)."),
    data: Path = typer.Option(None, "--data", help="Training data folder."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (created)."),
    val: Path = typer.Option(None, "--val", help="Validation pairs (low/, high/)."),
    config: Path = typer.Option(None, "--config", help="TOML file of settings."),
    recipe: Path = typer.Option(
        None,
        "--recipe",
        help="A recipe (recipes/NAME.toml): settings plus the [recipe] run flags (method, data, "
        "val, ...) that rebuild a shipped weight file from scratch; flags given here win.",
    ),
    sets: list[str] = typer.Option([], "--set", help="key=value or stage.key=value (repeat)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop (resumable) at this step."),
    time_budget: str = typer.Option(None, "--time-budget", help="Stop cleanly after e.g. 90m."),
    stage: str = typer.Option(None, "--stage", help="Run only this stage."),
    seed: int = typer.Option(None, "--seed", help="Random seed (default 0)."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads."),
    synthesize: bool = typer.Option(
        False, "--synthesize", help="Mix in low-light inputs synthesized from the high images."
    ),
    synth_ratio: float = typer.Option(None, "--synth-ratio", help="Synthetic fraction (0.5)."),
    synth_from: Path = typer.Option(
        None, "--synth-from", help="Folder of normal photos to synthesize extra pairs from."
    ),
    normal: Path = typer.Option(None, "--normal", help="Normal-light folder (unpaired stages)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: auto)."),
    init: Path = typer.Option(
        None, "--init", help="Fine-tune: start from the nets of this weights file (.safetensors)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if recipe is not None:
        from lumen_cli.train.config import read_recipe

        try:
            r = read_recipe(recipe)
        except (OSError, ValueError) as e:
            typer.echo(f"lumen train: {e}", err=True)
            raise typer.Exit(2) from None
        if config is not None:
            typer.echo("lumen train: give --recipe or --config, not both", err=True)
            raise typer.Exit(2)
        config = recipe
        method = method or r["method"]
        data = data or r.get("data")
        val = val or r.get("val")
        normal = normal or r.get("normal")
        synth_from = synth_from or r.get("synth_from")
        init = init or r.get("init")
        synthesize = synthesize or bool(r.get("synthesize", False))
        seed = seed if seed is not None else r.get("seed")
    missing = [n for n, v in (("--method", method), ("--out", out)) if v is None]
    if data is None and synth_from is None:
        missing.append("--data")
    if missing:
        typer.echo(ctx.get_help(), err=True)
        typer.echo(f"\nlumen train: missing {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    from lumen_cli.errors import EXIT_INTERRUPTED, LumenError
    from lumen_cli.train.runner import train as run_train

    sets = list(sets)
    if synth_ratio is not None:
        sets.append(f"synth_ratio={synth_ratio}")
    prog, update = _progress_display(quiet)

    def message(text: str) -> None:
        if not quiet:
            typer.echo(text, err=True)

    command = "lumen " + shlex.join(sys.argv[1:])
    try:
        if prog is not None:
            prog.start()
        summary = run_train(
            method,
            data,
            out,
            val=val,
            config=config,
            sets=sets,
            resume=resume,
            max_steps=max_steps,
            time_budget=time_budget,
            stage=stage,
            seed=seed,
            threads=threads,
            synthesize=synthesize,
            synth_from=synth_from,
            normal=normal,
            device=device,
            init=init,
            progress=update,
            message=message,
            command=command,
        )
    except LumenError as e:
        typer.echo(f"lumen train: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    finally:
        if prog is not None:
            prog.stop()
    for name, rec in summary["stages"].items():
        best = rec.get("best") or {}
        metric = " ".join(f"{k} {best[k]:.4f}" for k in ("psnr", "ssim", "val_loss") if k in best)
        typer.echo(
            f"{name}: step {rec.get('step')}/{rec.get('total')} {rec.get('reason', '')}"
            f"{'  best ' + metric if metric else ''}",
            err=True,
        )
    stopped = summary.get("stopped")
    if stopped:
        typer.echo(f"stopped ({stopped}); continue with --resume", err=True)
        if stopped == "interrupted":
            raise typer.Exit(EXIT_INTERRUPTED)
    else:
        typer.echo(
            f"done in {summary['seconds']} s; export with: lumen train export {out} "
            f"-o NAME.safetensors",
            err=True,
        )
    _leave_torchrun_worker()


def _leave_torchrun_worker() -> None:
    """A torchrun worker whose run completed exits here with status 0, skipping the
    interpreter's teardown: there gloo's C++ threads can still be releasing the destroyed
    group's state and abort the process (SIGABRT, "terminate called without an active
    exception"; pytorch/pytorch PR 179291), which turns a finished run into a failed torchrun.
    Everything the run writes is written and closed before this point."""
    from lumen_cli.train import dist

    if dist.env_world() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def export(
    run_dir: Path = typer.Argument(..., help="A run directory written by lumen train."),
    output: Path = typer.Option(..., "--output", "-o", help="NAME.safetensors to write."),
    best: bool = typer.Option(False, "--best", help="Use the best-validation weights."),
    license: str = typer.Option("MIT", "--license", help="License of the weights."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, or fp16 (half the file size)."),
    register_entry: bool = typer.Option(
        False, "--register", help="Also add/update [weights.NAME] in weights_manifest.toml."
    ),
    bundle: bool = typer.Option(
        False, "--bundle", help="With --register: copy the file to lumen_cli/weights/bundled/."
    ),
) -> None:
    """Write the run's EMA weights (all nets) as one safetensors file; print sha256 and the weights_manifest.toml entry to paste (or write it with --register)."""  # noqa: E501
    from lumen_cli.errors import LumenError
    from lumen_cli.train.export import export_run

    try:
        res = export_run(run_dir, output, best=best, license=license, dtype=dtype)
        if register_entry:
            from lumen_cli.weights.manifest_write import register_checkpoint

            name = output.stem
            register_checkpoint(
                name, output, repo_id=f"lumen-cli/{name}", license=license, bundle=bundle
            )
    except LumenError as e:
        typer.echo(f"lumen train export: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    for note in res["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {output}\nsha256 {res['sha256']}\n")
    if register_entry:
        typer.echo(f"registered [weights.{output.stem}] in the weights manifest")
    typer.echo(res["manifest"])


def pairs(
    sources: list[Path] = typer.Argument(..., help="Folders of bracket frames (any exposures)."),
    out: Path = typer.Option(..., "--output", "-o", help="Folder to write low/, high/ into."),
    exclude: list[Path] = typer.Option(
        [], "--exclude", help="Skip scenes that appear in this folder (e.g. your val set)."
    ),
    pattern: str = typer.Option(
        r"^([^_]+)_", "--scene-pattern", help="Regex whose group 1 names a file's scene."
    ),
    copy: bool = typer.Option(False, "--copy", help="Copy files instead of symlinking them."),
    target_luma: float = typer.Option(0.45, help="Mean luma the target frame should be near."),
    ratio: float = typer.Option(0.4, help="A low frame is at most this x the target's luma."),
    max_low_luma: float = typer.Option(0.22, help="... and at most this mean luma."),
    min_corr: float = typer.Option(0.75, help="Minimum structure (rank) correlation."),
) -> None:
    """Make paired training data (low/, high/) from exposure brackets: in each scene the
    best-exposed frame is the target of every much darker frame (the rule of the sice pairs)."""
    from lumen_cli.train.brackets import make_pairs

    try:
        res = make_pairs(
            sources,
            out,
            exclude=exclude,
            pattern=pattern,
            copy=copy,
            target_luma=target_luma,
            ratio=ratio,
            max_low_luma=max_low_luma,
            min_corr=min_corr,
        )
    except (OSError, ValueError) as e:
        typer.echo(f"lumen train pairs: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{res['pairs']} pairs from {res['scenes']} scenes in {out} "
        f"({res['excluded_scenes']} excluded scenes); list: {out / 'pairs.csv'}"
    )


def register(app: typer.Typer) -> None:
    """Mount ``lumen train`` (group: training when called alone, ``export`` subcommand)."""
    group = typer.Typer(help=TRAIN_HELP, no_args_is_help=False, add_completion=False)
    group.callback(invoke_without_command=True, help=TRAIN_HELP)(train)
    group.command("export")(export)
    group.command("pairs")(pairs)
    app.add_typer(group, name="train")
