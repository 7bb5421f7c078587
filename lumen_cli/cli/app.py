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
from lumen_cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    LumenError,
    Terminated,
)

HELP = """lumen: make photos taken in poor light look right.

Retinex and diffusion low-light enhancement (classical Retinex, KinD, Diff-Retinex) on the
CPU, CUDA or MPS. Start with:  lumen enhance photo.jpg -o out.png

Exit codes: 0 all done; 1 some inputs failed; 2 bad usage or configuration;
3 weights missing or not verified; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
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


def _click_kind(exc: BaseException) -> str | None:
    """'exit', 'abort', 'usage' or 'click' for click's exception classes, whether they come
    from click itself (older typer) or from the copy of click that newer typer vendors
    (``typer._click``); None for anything else. Matched by class name along the MRO, so no
    particular module layout is assumed."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] not in ("click", "typer"):
            continue
        kind = {"Exit": "exit", "Abort": "abort", "UsageError": "usage"}.get(cls.__name__)
        if kind is None and cls.__name__ == "ClickException":
            kind = "click"
        if kind:
            return kind
    return None


def _on_signal(signum, frame) -> None:
    """Ctrl-C, SIGTERM, SIGHUP: unwind (``finally`` blocks remove temporaries) as a Terminated
    exception, which neither click nor typer turns into a silent exit code. Further signals
    are ignored while lumen cleans up."""
    import signal

    for s in _PREVIOUS:
        signal.signal(s, signal.SIG_IGN)
    raise Terminated(signum)


_PREVIOUS: dict = {}  # signal -> the handler before lumen's


def _install_signal_handlers() -> None:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        s = getattr(signal, name, None)
        if s is None:
            continue
        old = signal.getsignal(s)
        if old in (signal.SIG_DFL, signal.default_int_handler):  # not if ignored (nohup, &)
            _PREVIOUS[s] = old
            signal.signal(s, _on_signal)


def _restore_signal_handlers() -> None:
    import signal

    for s, old in _PREVIOUS.items():
        signal.signal(s, old)
    _PREVIOUS.clear()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns errors into one-line messages and exit codes
    (usage errors 2, weights 3, Ctrl-C 130, SIGTERM 143); no traceback unless LUMEN_DEBUG=1."""
    from lumen_cli import atomic

    _install_signal_handlers()
    try:
        code = _run(argv)
    finally:
        atomic.cleanup()
        _restore_signal_handlers()
    if argv is None:
        sys.exit(code)
    return code


def _run(argv: list[str] | None) -> int:
    import os
    import signal

    try:
        rv = app(args=argv, prog_name="lumen", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except LumenError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as e:
        if e.signum == getattr(signal, "SIGINT", 2):
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        print("interrupted (terminated by a signal)", file=sys.stderr)
        return EXIT_TERMINATED if e.signum == signal.SIGTERM else 128 + e.signum
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except OSError as e:  # outside any one file (per-file errors are reported by run_jobs)
        from lumen_cli.cli.common import describe_os_error

        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:
        kind = _click_kind(e)
        if kind == "exit":
            return e.exit_code
        if kind == "abort":
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if kind in ("usage", "click"):
            e.show()
            if type(e).__name__ == "NoSuchOption":
                print(
                    "hint: a file whose name starts with '-' goes after '--' "
                    "(lumen enhance -- -photo.jpg) or as ./-photo.jpg",
                    file=sys.stderr,
                )
            return EXIT_USAGE if kind == "usage" else e.exit_code
        if os.environ.get("LUMEN_DEBUG"):
            raise
        print(
            f"error: internal error: {type(e).__name__}: {e} "
            "(set LUMEN_DEBUG=1 to see where; please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except BaseException as e:  # click's Exit is a RuntimeError in click 8, but be safe
        if _click_kind(e) == "exit":
            return e.exit_code
        raise


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at devnull so the interpreter's final flush is silent."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
