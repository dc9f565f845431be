"""Options shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

import click

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars or notes on stderr.")


def checked(field: str):
    """A click callback that checks an option with ``worldgen.validation`` (the rules every entry point
    shares); a bad value is a one-line error with exit code 1, like any other bad input."""

    def callback(ctx, param, value):
        from ..validation import check

        if value is None:
            return None
        return check(field, value, f"--{param.name.replace('_', '-')}")

    return callback


seed_option = click.option("--seed", type=int, default=0, show_default=True, callback=checked("seed"),
                           help="Random seed, 0 to 2**64-1; same seed, same world.")
device_option = click.option("--device", default=None, help="torch device (cuda, cuda:1, mps, cpu); default: the best available.")


def parse_size(value: str) -> tuple[int, int]:
    """'2048x512' -> (2048, 512), with a usable error."""
    try:
        w, h = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 2048x512") from None
    return w, h


def note(message: str, quiet: bool) -> None:
    """A note for the person at the terminal (stderr), silenced by --quiet. Control characters (from
    prompts or file names inside the message) are escaped: nothing can forge a line or drive the terminal."""
    from ..validation import printable

    if not quiet:
        click.echo(f"worldgen: {printable(message)}", err=True)
