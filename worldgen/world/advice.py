"""Any exception -> the one line a person reads, for the CLI and the server alike.

Library errors (``WorldgenError``) carry their own message; known runtime faults (memory, file
system, hostile pickles, open3d) get their fix; anything else is reported as an internal error
with the way to see its traceback (never silently swallowed).
"""

from __future__ import annotations

import pickle
import re

DEBUG_ENV = "WORLDGEN_DEBUG"
DEBUG_HINT = f"re-run with {DEBUG_ENV}=1 to see the traceback"


def one_line(exc: BaseException) -> str:
    """The exception's text on one printable line (control characters escaped)."""
    from ..validation import printable

    text = " ".join(str(exc).split())
    return printable(text or type(exc).__name__)


def short(exc: BaseException, limit: int = 300) -> str:
    text = one_line(exc)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def message_for(exc: BaseException) -> str:
    """The line to show for ``exc``: a WorldgenError's own message, else ``advice_for``."""
    from ..errors import WorldgenError

    return one_line(exc) if isinstance(exc, WorldgenError) else advice_for(exc)


def advice_for(exc: BaseException) -> str:
    """One line for a fault that is not a WorldgenError: its fix when known, else an internal error."""
    known = known_fault(exc)
    if known is not None:
        return known
    return f"internal error {type(exc).__name__}: {short(exc)}; this is a bug in worldgen, please report it ({DEBUG_HINT})"


def known_fault(exc: BaseException):
    """The fix for a known runtime fault (memory, file system, hostile pickles, open3d), else None."""
    from ..scene.fs_errors import os_error_message

    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return ("the GPU ran out of memory; retry with --window-batch 2 (fewer windows per model call), "
                "--dtype float16 if you chose float32, a smaller --size (then `worldgen refine --scale 2`), "
                "or --device cpu")
    if isinstance(exc, MemoryError):
        return ("the machine ran out of memory; use a smaller --size (then `worldgen refine --scale 2`) or "
                "close other programs")
    if isinstance(exc, OSError):
        return os_error_message(exc)
    if isinstance(exc, RecursionError):
        return f"an input file is nested too deeply to read ({one_line(exc)}); simplify or replace it"
    if isinstance(exc, pickle.UnpicklingError) or name == "UnpicklingError":
        # Not the exception's text: torch's advises turning weights_only off, which worldgen never does.
        return ("a weights file was refused because it is a pickle that holds more than plain tensors; use "
                "weights from a trusted source, ideally .safetensors")
    module = type(exc).__module__ or ""
    if module.startswith("open3d") or "[Open3D" in str(exc):
        # open3d colours its messages: drop its own colour codes (user text elsewhere is escaped instead)
        text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(exc).split()))
        return f"open3d refused the request ({short(RuntimeError(text))}); check the options (sizes, -O values) and retry"
    return None
