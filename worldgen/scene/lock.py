"""The per-scene writer lock: one process at a time claims and commits a version of a scene.

The lock is an ``fcntl.flock`` on the scene folder itself (a directory descriptor), so there is no lock
file to leave behind, to delete while someone waits on it, or to be planted as a symlink; the folder's
inode survives renames (batch and recipes build a scene elsewhere and move it into place). ``fcntl``
directly, not the ``filelock`` package: that needs a lock *file*, and its acquire wraps the open in
rollback logic that, in the every-step Ctrl-C test, lost a KeyboardInterrupt; the plain system call
is a dozen lines and interrupts cleanly. The kernel drops a flock when its process dies, so a
SIGKILLed writer can never leave the scene locked.

Only the commit is locked (pick the next version number, rename the staged folder, replace the
manifest): long computations run unlocked, so eight refines of one scene compute in parallel and
then commit one after the other in milliseconds. A writer that finds the lock taken says so once
through ``set_wait_notice``'s callback (the CLI prints it on stderr) and waits up to
``WORLDGEN_LOCK_TIMEOUT`` seconds (default 120) before failing with one line.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import SceneError

DEFAULT_TIMEOUT_S = 120.0
POLL_S = 0.05

_wait_notice: Optional[Callable[[str], None]] = None


def set_wait_notice(callback: Optional[Callable[[str], None]]) -> None:
    """Who hears "waiting for the scene lock" (the CLI: a stderr note). Library code never prints."""
    global _wait_notice
    _wait_notice = callback


def lock_timeout() -> float:
    text = os.environ.get("WORLDGEN_LOCK_TIMEOUT", "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value >= 0 and value == value else DEFAULT_TIMEOUT_S


@contextlib.contextmanager
def scene_lock(folder: Path, timeout: Optional[float] = None) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the ``with`` block (waiting for another writer if needed)."""
    import fcntl

    timeout = lock_timeout() if timeout is None else timeout
    path = Path(folder)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if _wait_notice is not None:
                _wait_notice(f"{folder} is being written by another worldgen process; waiting up to {timeout:g} s "
                             f"for it to finish its version")
            deadline = time.monotonic() + timeout
            while True:
                time.sleep(POLL_S)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SceneError(f"{folder} is still locked by another worldgen process after {timeout:g} s "
                                         f"; wait for it to finish, or raise WORLDGEN_LOCK_TIMEOUT") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# Staging folders: named after their owner, so a sweep can prove which ones are abandoned ------------

STAGE_PREFIX = ".stage"
_HOST = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch == "-")[:40] or "host"


def staging_name(token: str) -> str:
    """``.stage.HOST.PID.TOKEN.tmp``: who made it, to tell later whether that process still lives."""
    return f"{STAGE_PREFIX}.{_HOST}.{os.getpid()}.{token}.tmp"


def is_abandoned(name: str) -> bool:
    """True only for a staging folder of this host whose process is gone (provably stale). Folders of
    other hosts (a scene on a network share) or of live processes, and anything else, are kept."""
    parts = name.split(".")
    # ['', 'stage', HOST, PID, TOKEN, 'tmp']
    if len(parts) != 6 or parts[0] != "" or f".{parts[1]}" != STAGE_PREFIX or parts[5] != "tmp":
        return False
    if parts[2] != _HOST or not parts[3].isdigit():
        return False
    pid = int(parts[3])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False  # alive (someone else's) or unknown: not provably stale
    return False
