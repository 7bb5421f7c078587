"""The ``lumen`` command. Only typer is imported here, so ``lumen --help`` and ``--version``
answer at once; each command imports torch and friends when it runs."""

from __future__ import annotations

import sys

import typer

from lumen_cli import __version__
from lumen_cli.cli import compare as compare_mod
from lumen_cli.cli import decompose as decompose_mod
from lumen_cli.cli import enhance as enhance_mod
from lumen_cli.cli import eval_cmd, info, train_cmd, weights_cmd
from lumen_cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, LumenError

HELP = """lumen: make photos taken in poor light look right.

Retinex and diffusion low-light enhancement (classical Retinex, KinD, Diff-Retinex) on the
CPU, CUDA or MPS. Start with:  lumen enhance photo.jpg -o out.png

Exit codes: 0 all done; 1 some inputs failed; 2 bad usage or configuration;
3 weights missing or not verified; 130 interrupted (Ctrl-C).
"""

app = typer.Typer(
    name="lumen",
    help=HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"lumen {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    pass


app.command("enhance", help=enhance_mod.HELP, short_help="Enhance low-light photos.")(
    enhance_mod.enhance
)
app.command(
    "decompose",
    help=decompose_mod.HELP,
    short_help="Write the Retinex maps (reflectance, illumination) of photos.",
)(decompose_mod.decompose)
app.command("methods")(info.methods)
app.command("env")(info.env)
app.add_typer(weights_cmd.app, name="weights", help="List, fetch, verify and publish weights.")
train_cmd.register(app)
eval_cmd.register(app)
app.command("compare", help=compare_mod.HELP, short_help="A contact sheet of several methods.")(
    compare_mod.compare
)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns lumen errors into messages and exit codes."""
    import click

    try:
        rv = app(args=argv, prog_name="lumen", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except LumenError as e:
        print(f"error: {e}", file=sys.stderr)
        code = e.exit_code
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.exceptions.Abort:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except click.exceptions.ClickException as e:
        e.show()
        code = EXIT_USAGE if isinstance(e, click.exceptions.UsageError) else e.exit_code
    except BrokenPipeError:
        code = 0
    if argv is None:
        sys.exit(code)
    return code
