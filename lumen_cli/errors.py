"""Errors a user can act on, each with the exit code the CLI returns for it.

Exit codes: 0 all done; 1 some inputs failed; 2 bad usage or configuration;
3 weights that cannot be found or verified; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WEIGHTS = 3
EXIT_INTERRUPTED = 130


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
