"""The options every command shares, and what they mean (docs/cli.md).

``-q/--quiet`` and ``-v/--verbose`` are on every command: a command that does not declare them gets
them from ``add_common_options`` when the group loads it, so a new command cannot forget them.
``--json`` is declared by each command that makes or lists something (``json_option``), which then
ends with ``report(...)``: one JSON object on stdout (the paths written, the version, the timings).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Iterator

import click

QUIET_KEY = "worldgen.quiet"
START_KEY = "worldgen.started"


def _root_meta(ctx: click.Context) -> dict:
    return ctx.meta  # shared by a context and all its children (click's own contract)


def _remember_quiet(ctx: click.Context, param, value):
    meta = _root_meta(ctx)
    meta.setdefault(START_KEY, time.perf_counter())
    meta[QUIET_KEY] = bool(value) or meta.get(QUIET_KEY, False)
    return value


def _start_timing(ctx: click.Context, param, value):
    if value:
        from .timing import timed_command

        ctx.with_resource(timed_command(True))
    return value


QUIET_HELP = "No progress bars or notes on stderr, and no log lines from native libraries (open3d)."
quiet_option = click.option("-q", "--quiet", is_flag=True, callback=_remember_quiet, help=QUIET_HELP)
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object on stdout: what was written or listed, the worldgen "
                                "version and the seconds taken.")


def add_common_options(command: click.Command) -> None:
    """Give ``command`` (and every subcommand of a group) -q/--quiet and -v/--verbose unless it has them."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_common_options(sub)
        return
    names = {p.name for p in command.params}
    if "quiet" not in names:
        command.params.append(click.Option(["-q", "--quiet", "quiet_flag"], is_flag=True, expose_value=False,
                                           callback=_remember_quiet, help=QUIET_HELP))
    if "verbose" not in names:
        command.params.append(click.Option(["-v", "--verbose", "verbose_flag"], is_flag=True, expose_value=False,
                                           callback=_start_timing,
                                           help="Print the time of each phase to stderr when done."))


def is_quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and _root_meta(ctx).get(QUIET_KEY))


def elapsed_s() -> float:
    ctx = click.get_current_context(silent=True)
    started = _root_meta(ctx).get(START_KEY) if ctx is not None else None
    return 0.0 if started is None else time.perf_counter() - started


def note(message: str, quiet: bool) -> None:
    """A note for the person at the terminal (stderr), silenced by --quiet. Control characters (from
    prompts or file names inside the message) are escaped: nothing can forge a line or drive the terminal."""
    from ..validation import printable

    if not quiet:
        click.echo(f"worldgen: {printable(message)}", err=True)


def report(message: str, *, quiet: bool, as_json: bool, **fields) -> None:
    """End a command: ``message`` on stderr for a person (unless quiet), and with ``--json`` one JSON
    object on stdout for a script: ``fields`` (paths become strings) plus version and seconds."""
    from .. import __version__

    note(message, quiet)
    if as_json:
        payload = {**fields, "worldgen": __version__, "seconds": round(elapsed_s(), 3)}
        click.echo(json.dumps(payload, default=str, indent=2))


@contextlib.contextmanager
def native_output_silenced(active: bool) -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null while native code runs (open3d's renderer prints
    ``FEngine ...`` and ``Vulkan device driver ...`` straight to them, past Python's sys.stdout)."""
    if not active:
        yield
        return
    try:  # silencing is cosmetic: where /dev/null cannot be opened, the output stays and the work goes on
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
