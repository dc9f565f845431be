"""File-system errors as one line that names the path and the fix (full disk, read-only, no permission...)."""

from __future__ import annotations

import errno
import re

from ..validation import printable

_FIXES = {
    errno.ENOSPC: "the disk is full; free some space there or write somewhere else (-o / --out)",
    errno.EDQUOT: "your disk quota is used up; free some space or write somewhere else (-o / --out)",
    errno.EROFS: "that file system is read-only; write somewhere else (-o / --out) or remount it read-write",
    errno.EACCES: "permission denied; fix the permissions (chmod/chown) or write somewhere else (-o / --out)",
    errno.EPERM: "the operation is not permitted there; fix the permissions or write somewhere else (-o / --out)",
    errno.ENOENT: "it does not exist; check the path",
    errno.ENOTDIR: "a part of the path is not a folder; check the path",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.EMFILE: "too many files are open; close other programs and retry",
    errno.ELOOP: "it is a symbolic link loop; fix or remove the link",
    errno.EIO: "the disk reported an I/O error; check the disk and retry",
    errno.EXDEV: "the move crosses file systems; keep the output on one disk",
    errno.ENOTEMPTY: "the folder is not empty; choose another name",
    errno.EEXIST: "it already exists; choose another name",
}

# Hidden temporary names used by atomic writes and staging: the user cares about the real file.
_TEMP = re.compile(r"/\.(?P<name>[^/]+?)\.[0-9a-f]{12}\.tmp$")


def _user_path(filename) -> str:
    text = str(filename)
    match = _TEMP.search(text)
    if match:
        text = text[:match.start()] + "/" + match.group("name")
    return printable(text)


def os_error_message(exc: OSError) -> str:
    """``cannot write fjord/scene.json: No space left on device; the disk is full; free some space ...``"""
    fix = _FIXES.get(exc.errno, "check the path and retry")
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if exc.filename is not None:
        where = _user_path(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {_user_path(exc.filename2)}"
        return f"{where}: {printable(reason)}; {fix}"
    return f"{printable(reason)}; {fix}"


def named(exc: OSError, path) -> OSError:
    """``exc`` with ``path`` as its file name when it has none (a failed ``write()`` on a full disk
    does not say which file): the one-line message can then name it."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))
