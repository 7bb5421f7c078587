"""Errors a user can act on, each with the exit code the CLI returns for it.

Exit codes: 0 all done; 1 some inputs failed; 2 bad usage or configuration;
3 weights that cannot be found or verified; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
In both interrupted cases no partial or temporary output file is left behind.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WEIGHTS = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it


class LumenError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = EXIT_USAGE


class UsageError(LumenError):
    exit_code = EXIT_USAGE


class DeviceError(UsageError):
    """A requested device or precision is not available here."""


class WeightsError(LumenError):
    """Weights missing, not verifiable (sha256 mismatch) or not loadable."""

    exit_code = EXIT_WEIGHTS


class ImageError(LumenError):
    """One input image cannot be read or one output cannot be written (a batch goes on)."""

    exit_code = EXIT_FAILED


class ComputeError(LumenError):
    """A method produced no usable result for one image (NaN/inf even in fp32); a batch goes on."""

    exit_code = EXIT_FAILED


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) received: raised by the CLI's signal handler so that ``finally``
    blocks remove temporaries, as for Ctrl-C. A BaseException, like KeyboardInterrupt, so
    per-file error handling never swallows it."""

    def __init__(self, signum: int = 15):
        super().__init__(signum)
        self.signum = signum
