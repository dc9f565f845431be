"""`--verbose`: where a command's time went, printed to stderr after it finishes (or fails)."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Optional

import click

from ..phases import PhaseTimer, process_age_s, recording

verbose_option = click.option("--verbose", "-v", is_flag=True,
                              help="Print the time of each phase (start-up, loading, text, sampling, decode, "
                                   "export) to stderr.")


@contextlib.contextmanager
def timed_command(verbose: bool) -> Iterator[Optional[PhaseTimer]]:
    """Record the command's phases when ``verbose``; print them, with the process's whole wall time."""
    if not verbose:
        yield None
        return
    timer = PhaseTimer()
    started = process_age_s()  # the interpreter and the imports before the command body
    t0 = time.perf_counter()
    try:
        with recording(timer):
            yield timer
    finally:
        body = time.perf_counter() - t0
        lines = [("start-up (python, imports)", started or 0.0, 0)] if started is not None else []
        lines += [(name, seconds, timer.depths.get(name, 0)) for name, seconds in timer.phases.items()]
        lines.append(("other (imports in the command, set-up)", max(0.0, body - timer.top_level_s()), 0))
        width = max(len(name) + 2 * depth for name, _, depth in lines)
        for name, seconds, depth in lines:
            click.echo(f"phase {'  ' * depth + name:<{width}} {seconds:8.3f} s", err=True)
        click.echo(f"phase {'total':<{width}} {body + (started or 0.0):8.3f} s", err=True)
