"""One progress callback shape for every long operation.

A callback receives ``ProgressEvent`` objects; ``stage`` names the work ("denoise", "decode",
"export"), ``done``/``total`` count its units. Library code never prints: it calls the callback,
and the CLI renders it (or not, with ``--quiet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: int
    total: int
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def report(callback: Optional[ProgressCallback], stage: str, done: int, total: int, detail: str = "") -> None:
    """Send one event if a callback is attached; the common no-op case stays cheap."""
    if callback is not None:
        callback(ProgressEvent(stage, done, total, detail))
