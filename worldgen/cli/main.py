"""The ``worldgen`` command: a thin click group.

Each module in ``worldgen.cli.commands`` exposes ``commands`` (a list of click commands) and is
added here, so a new command is a new module. Modules import only click at top level: torch and
diffusers load inside the command bodies, which keeps ``--help`` instant.

Library errors (``WorldgenError``) become one-line messages with exit code 1 here, and only here.
Every other exception becomes one line too: file-system errors name the path and the fix, known
runtime faults (memory, hostile pickles, open3d) their advice, and anything unexpected is reported
as an internal error with the hint to re-run with WORLDGEN_DEBUG=1, which shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import click

from .. import __version__
from ..errors import WorldgenError
from . import commands as commands_pkg
from .grammar import add_common_options


from ..world.advice import DEBUG_ENV, DEBUG_HINT, advice_for as _advice_for, one_line as _one_line  # noqa: E402,F401


# click >= 8.2: a group called without a command raises this to print its help.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineUsageError(click.UsageError):
    """A usage error (missing argument, bad option value, unknown command) as ONE line, exit code 2:
    click's own shows the usage text and a blank line first, where the README promises one line."""

    def __init__(self, exc: click.UsageError):
        super().__init__(exc.format_message(), exc.ctx)

    def show(self, file=None) -> None:
        from ..validation import printable

        # Named "worldgen" whatever the program was invoked as (python -m, a test runner).
        below = self.ctx.command_path.split(" ")[1:] if self.ctx is not None else []
        where = " ".join(["worldgen", *below])
        message = printable(" ".join(self.format_message().split())).rstrip(".")
        click.echo(f"Error: {message}; see `{where} --help`", err=True)


class WorldgenGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list) -> list:
        try:
            return super().parse_args(ctx, args)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:  # the group's own options (`worldgen --bogus`)
            raise OneLineUsageError(exc) from None

    def invoke(self, ctx: click.Context):
        from ..scene.lock import set_wait_notice

        set_wait_notice(_lock_wait_note)  # a writer waiting for a scene's lock says so on stderr
        try:
            return super().invoke(ctx)
        except WorldgenError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except KeyboardInterrupt:
            click.echo("worldgen: interrupted; nothing was written past the last complete version", err=True)
            ctx.exit(130)
        except click.UsageError as exc:  # a subcommand's arguments, or an unknown command
            if isinstance(exc, (OneLineUsageError, _NO_ARGS_IS_HELP)):
                raise  # `worldgen models` alone shows its help, as asked
            raise OneLineUsageError(exc) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            raise click.ClickException(_advice_for(exc)) from None


@click.group(cls=WorldgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="worldgen")
def cli() -> None:
    """Build 3D worlds from text: seamless 360-degree RGB-D panoramas, meshes and point clouds."""


def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        for command in getattr(module, "commands", []):
            add_common_options(command)  # -q/--quiet and -v/--verbose on every command (grammar.py)
            cli.add_command(command)


_load_commands()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Plugin and library warnings reach the terminal as one readable line, not a source dump.
    from ..validation import printable

    click.echo(f"worldgen: warning: {printable(' '.join(str(message).split()))}", err=True)


def _lock_wait_note(message: str) -> None:
    from ..validation import printable

    click.echo(f"worldgen: {printable(message)}", err=True)


def main() -> None:
    import warnings

    warnings.showwarning = _show_warning
    cli(prog_name="worldgen")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
