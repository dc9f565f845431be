"""Atomic file writes: a reader sees the old file or the new one, never a half-written one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .fs_errors import named

# mkstemp creates files as 0600; finished files should get the permissions any other new file
# would (0666 less the umask). Read the umask once: setting it is process-wide.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The temporary file is fsynced before the rename so a crash cannot leave an empty file behind
    the new name. On any failure the temporary file is removed and the old file stays intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named before it exists (mkstemp returns the name only after creating the file, so a Ctrl-C in
    # between would leak it): whatever happens below, the cleanup knows what to remove.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise named(exc, path) from None
    except BaseException:
        # BaseException: a Ctrl-C mid-write must also clean up.
        _discard(tmp)
        raise
    return path


def _discard(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
