"""Atomic file creation and replacement, and the sweep of temporaries left by killed runs.

Every file lumen writes goes first to a temporary ``.<name>.<pid>-<hex>.tmp`` in the destination
folder (created exclusively, flushed and fsynced), then takes its final name in one step:

- replacing allowed: ``os.replace`` (readers see the old file or the new one, never a mix);
- no replacing: ``os.link`` to the final name, which fails if that name exists at that moment,
  so a file that appeared while lumen was working is never overwritten (a check made before
  the work would leave a window open).

The temporary is removed on any error, Ctrl-C and SIGTERM included (the CLI turns SIGTERM into
an exception). A SIGKILL or a power cut can leave one behind: ``sweep`` removes those whose
writing process is gone (the pid is in the name) or which are older than ``STALE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

STALE_SECONDS = 3600.0  # a temporary lives for one write; older ones are left-overs
LEGACY_STALE_SECONDS = 600.0  # names without a pid (older lumen versions)
_TMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")
# older lumen versions: ".<image name>.<hex>.tmp" (image suffixes only, not to touch others')
_LEGACY_TMP = re.compile(r"^\..+\.(png|jpe?g|tiff?|webp|bmp)\.[0-9a-f]{8}\.tmp$", re.IGNORECASE)
_MAX_STEM = 180  # keeps the temporary's name under the usual 255-byte limit


class DestinationExistsError(FileExistsError):
    """The final name exists and replacing it was not allowed."""


_LIVE: set[str] = set()  # temporaries of this process not yet published or removed


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` that ``sweep`` recognises (and ``cleanup``
    removes if this process is interrupted before publishing it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name[:_MAX_STEM]}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    _LIVE.add(str(tmp))
    return tmp


def _discard(tmp) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    _LIVE.discard(str(tmp))


def cleanup() -> None:
    """Remove this process's unfinished temporaries (called when a signal stops the CLI, in
    case it arrived between a write and its own clean-up)."""
    for tmp in list(_LIVE):
        _discard(tmp)


def publish(tmp: str | os.PathLike, path: str | os.PathLike, *, overwrite: bool) -> None:
    """Give the complete file ``tmp`` its final name ``path`` (see the module docstring).
    Raises DestinationExistsError if ``path`` exists and ``overwrite`` is False. ``tmp`` is
    gone afterwards whatever happens."""
    try:
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise DestinationExistsError(f"{path}: already exists") from None
        except OSError:  # no hard links on this file system (FAT, some network shares)
            if os.path.lexists(path):
                raise DestinationExistsError(f"{path}: already exists") from None
            os.replace(tmp, path)
    finally:
        _discard(tmp)


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: a complete file or none, never a partial one."""
    tmp = temp_path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _discard(tmp)
        raise
    publish(tmp, path, overwrite=overwrite)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder for the caller to write; on success it
    takes the name ``path`` (see ``publish``), on any error it is removed."""
    tmp = temp_path(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield str(tmp)
    except BaseException:
        _discard(tmp)
        raise
    publish(tmp, path, overwrite=overwrite)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap test: rely on the age
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def is_temporary(name: str) -> bool:
    """Whether a file name is one of lumen's temporaries."""
    return bool(_TMP.match(name) or _LEGACY_TMP.match(name))


def sweep(folder: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Remove lumen temporaries in ``folder`` (not below) whose writer has exited or which are
    stale; returns the paths removed. Temporaries of running lumen processes are left alone."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP.match(e.name)
        legacy = m is None and _LEGACY_TMP.match(e.name)
        if not (m or legacy):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if m:
            stale = age > STALE_SECONDS or not _alive(int(m.group(1)))
        else:
            stale = age > LEGACY_STALE_SECONDS
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed
