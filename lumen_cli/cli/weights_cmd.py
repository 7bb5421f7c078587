"""``lumen weights list|pull|verify|path|push``: look after the files in weights_manifest.toml.

Errors are raised as ``lumen_cli.errors`` exceptions; the main app turns them into messages
and exit codes (WeightsError -> 3). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import typer

from lumen_cli.cli.choices import complete_weights

app = typer.Typer(
    help="List, fetch, check and publish the weight files named in weights_manifest.toml.",
    no_args_is_help=True,
)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def _entries(name: str | None):
    from lumen_cli.weights.manifest import get_entry, load_manifest

    return [get_entry(name)] if name else list(load_manifest().values())


@app.command("list")
def list_cmd() -> None:
    """Table of the weight files: method, size, where they are, Hub revision, licence."""
    from rich.console import Console
    from rich.table import Table

    from lumen_cli.weights.manifest import manifest_path
    from lumen_cli.weights.resolve import bundled_file, cached_path, status

    entries = _entries(None)
    console = Console()
    if not entries:
        console.print(f"No weights in the manifest yet ({manifest_path()}).")
        return
    table = Table(title="lumen weights")
    for col in ("name", "method", "size", "status", "published", "license"):
        table.add_column(col, no_wrap=col in ("name", "published"))
    for e in entries:
        st = status(e)
        local = cached_path(e) if st == "cached" else bundled_file(e)
        size = (
            e.size_bytes if e.size_bytes is not None else (local.stat().st_size if local else None)
        )
        colour = {"cached": "green", "bundled": "green", "missing": "red"}[st]
        pub = f"{e.repo_id}@{e.revision[:8]}" if e.published else "[dim]not published[/dim]"
        table.add_row(e.name, e.method, _size(size), f"[{colour}]{st}[/{colour}]", pub, e.license)
    console.print(table)


@app.command()
def pull(
    name: str = typer.Argument(
        None,
        help="Entry to fetch; all published entries if omitted.",
        autocompletion=complete_weights,
    ),
) -> None:
    """Download published weights into the HF cache (pinned revision) and check their sha256."""
    from lumen_cli.errors import WeightsError
    from lumen_cli.weights.resolve import pull as pull_one

    failed = []
    for e in _entries(name):
        if not e.published and name is None:
            typer.echo(f"{e.name}: not published yet, skipped", err=True)
            continue
        try:
            typer.echo(f"{e.name}: {pull_one(e)}")
        except WeightsError as err:
            if name is not None:
                raise
            typer.echo(f"{e.name}: {err}", err=True)
            failed.append(e.name)
    if failed:
        raise WeightsError(f"could not pull: {', '.join(failed)}")


@app.command()
def verify(
    name: str = typer.Argument(
        None, help="Entry to check; all entries if omitted.", autocompletion=complete_weights
    ),
) -> None:
    """Check the sha256 of every local copy (HF cache, bundled) against the manifest."""
    from lumen_cli.errors import WeightsError
    from lumen_cli.weights.resolve import verify as verify_one

    bad = []
    for e in _entries(name):
        ok, _, msg = verify_one(e)
        typer.echo(f"{e.name}: {'OK' if ok else 'FAILED'}\n  " + msg.replace("\n", "\n  "))
        if not ok:
            bad.append(e.name)
    if bad:
        raise WeightsError(f"weights not found or not verified: {', '.join(bad)}")


@app.command()
def path(
    name: str = typer.Argument(
        ..., help="Entry name from the manifest.", autocompletion=complete_weights
    ),
    download: bool = typer.Option(
        False, "--download/--no-download", help="Fetch from the Hub if not local."
    ),
) -> None:
    """Print the checked local path of a weight file (what `lumen enhance` would load)."""
    from lumen_cli.weights.resolve import resolve

    typer.echo(str(resolve(name, allow_download=download)))


@app.command()
def push(
    name: str = typer.Argument(
        ..., help="Entry name from the manifest.", autocompletion=complete_weights
    ),
    repo_id: str = typer.Option(..., "--repo-id", help="Hugging Face model repo, ORG/NAME."),
    token: str = typer.Option(
        None, "--token", help="Hub token with write access (default: HF_TOKEN / saved login)."
    ),
    card: bool = typer.Option(True, "--card/--no-card", help="Upload a README.md model card."),
) -> None:
    """Publish a weight file to the Hugging Face Hub and pin the commit in the manifest.

    A README.md model card (method, preset, parameters, licence, data and recipe, metrics,
    usage) is uploaded with it. On a wheel install the pinned entry is written to the
    user-level manifest (~/.config/lumen/weights_manifest.toml), not into site-packages.
    Needs a network connection and a token with write access.
    """
    from lumen_cli.weights.manifest import write_path
    from lumen_cli.weights.resolve import push as push_one

    entry = push_one(name, repo_id, token=token, card=card)
    typer.echo(f"{entry.name}: published at {entry.repo_id}@{entry.revision}")
    typer.echo(f"manifest updated: {write_path()}")


@app.command()
def convert(
    method: str = typer.Argument(..., help="Method whose official checkpoint(s) to convert."),
    sources: list[str] = typer.Argument(
        ..., help="Official file(s) or checkpoint folder(s), as the authors distribute them."
    ),
    output: str = typer.Option(..., "-o", "--output", help="Safetensors file to write."),
    register: str = typer.Option(
        None, "--register", help="Also add a manifest entry of this name for the new file."
    ),
    license: str = typer.Option(
        "see the authors' repository",
        "--license",
        help="Licence of the official weights, recorded in the manifest entry with --register.",
    ),
) -> None:
    """Convert the authors' official checkpoint into lumen safetensors (the `paper` preset).

    Pickled files are opened with torch.load(weights_only=True) and a small allow-list; no
    code from a checkpoint is ever run. Use the result with `--weights OUT.safetensors`.
    """
    from lumen_cli.weights.convert import convert as run_convert

    sha, result = run_convert(method, sources, output)
    typer.echo(f"{output}: {method} preset {result.preset!r}, nets {', '.join(result.nets)}")
    typer.echo(f"sha256 {sha}")
    for k, v in result.notes.items():
        typer.echo(f"note: {k}: {v}", err=True)
    if register:
        from lumen_cli.weights.manifest_write import register_checkpoint

        entry = register_checkpoint(register, output, license=license)
        typer.echo(f"manifest entry {entry.name!r} written")
