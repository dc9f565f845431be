"""Where a command's time goes: named phases, timed by the library, shown by the CLI (``--verbose``).

Library code marks its phases with ``with phase("load jointnet"): ...``; that costs nothing unless
a caller is ``recording`` into a ``PhaseTimer`` (a context variable, so a server thread or a test
records only its own work). The library never prints: the CLI reads ``timer.phases`` afterwards.

GPU work is asynchronous; a phase ends when its Python code returns. The sampler and the decoder
read their results back to the host (a finiteness check, the decoded pixels), so their phases hold
their GPU time too.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional


@dataclass
class PhaseTimer:
    """Seconds per phase in the order phases began; a name seen twice adds up. A phase entered
    inside another is one of its parts (``depth`` 1, 2, ...): only depth-0 phases add up to the whole."""

    phases: dict[str, float] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)
    _depth: int = 0

    def add(self, name: str, seconds: float, depth: int = 0) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds
        self.depths.setdefault(name, depth)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        depth = self._depth
        self.phases.setdefault(name, 0.0)  # listed where it began, not where it ended
        self.depths.setdefault(name, depth)
        self._depth += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self._depth = depth
            self.add(name, time.perf_counter() - start, depth)

    def top_level_s(self) -> float:
        return sum(s for name, s in self.phases.items() if self.depths.get(name, 0) == 0)


_ACTIVE: contextvars.ContextVar[Optional[PhaseTimer]] = contextvars.ContextVar("worldgen_phase_timer", default=None)


@contextlib.contextmanager
def recording(timer: PhaseTimer) -> Iterator[PhaseTimer]:
    """Record every ``phase`` entered in this context into ``timer``."""
    token = _ACTIVE.set(timer)
    try:
        yield timer
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time this block as ``name`` in the timer being recorded into, if any."""
    timer = _ACTIVE.get()
    if timer is None:
        yield
        return
    with timer.phase(name):
        yield


def record_part(name: str, seconds: float) -> None:
    """Add ``seconds`` as ``name``, a part of the phase open now, for work timed on another thread
    (which does not see this context's timer)."""
    timer = _ACTIVE.get()
    if timer is not None:
        timer.add(name, seconds, timer._depth)


def process_age_s() -> Optional[float]:
    """Seconds since this process started (Linux /proc; None elsewhere): the interpreter's start-up
    and the imports before a command body runs are part of what a user waits for."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
