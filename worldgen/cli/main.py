"""The ``worldgen`` command: a thin click group.

Each module in ``worldgen.cli.commands`` exposes ``commands`` (a list of click commands) and is
added here, so a new command is a new module. Modules import only click at top level: torch and
diffusers load inside the command bodies, which keeps ``--help`` instant.

Library errors (``WorldgenError``) become one-line messages with exit code 1 here, and only here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from .. import __version__
from ..errors import WorldgenError
from . import commands as commands_pkg


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class WorldgenGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WorldgenError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except KeyboardInterrupt:
            click.echo("worldgen: interrupted; nothing was written past the last complete version", err=True)
            ctx.exit(130)
        except Exception as exc:  # a few library faults deserve advice rather than a traceback
            advice = _advice_for(exc)
            if advice is None:
                raise
            raise click.ClickException(advice) from None


def _advice_for(exc: Exception) -> str | None:
    """Turn known runtime faults into one-line advice; anything else keeps its traceback."""
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return ("the GPU ran out of memory; retry with --window-batch 2 (fewer windows per model call), "
                "--dtype float16 if you chose float32, a smaller --size (then `worldgen refine --scale 2`), "
                "or --device cpu")
    return None


@click.group(cls=WorldgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="worldgen")
def cli() -> None:
    """Build 3D worlds from text: seamless 360-degree RGB-D panoramas, meshes and point clouds."""


def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        for command in getattr(module, "commands", []):
            cli.add_command(command)


_load_commands()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Plugin and library warnings reach the terminal as one readable line, not a source dump.
    click.echo(f"worldgen: warning: {message}", err=True)


def main() -> None:
    import warnings

    warnings.showwarning = _show_warning
    cli(prog_name="worldgen")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
