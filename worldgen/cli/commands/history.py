"""`worldgen history`: the versions of a scene."""

from __future__ import annotations

import click


def _field(value, width: int = 0) -> str:
    """A manifest value as one safe cell: any type becomes text, control characters are escaped (a
    prompt cannot forge lines or send escape sequences to the terminal), long text is cut."""
    from ...validation import printable

    text = printable(value if isinstance(value, str) else ("" if value is None else str(value)))
    return f"{text:<{width}}" if width else text


@click.command()
@click.argument("scene", type=click.Path(file_okay=False))
def history(scene):
    """List every version of SCENE: number, operation, date, backend, size, prompt (and where it started)."""
    from ...scene.store import Scene

    s = Scene.open(scene)
    for record in s.versions:
        size = record.get("size")
        size = "x".join(str(n) for n in size) if isinstance(size, list) else _field(size)
        backend = record.get("backend")
        name = backend.get("name", "?") if isinstance(backend, dict) else backend
        marker = "*" if record["version"] == s.current else " "
        parent = record.get("parent")
        origin = f" (from v{parent})" if isinstance(parent, int) and parent != record["version"] - 1 else ""
        click.echo(f"{marker}v{record['version']:<3} {_field(record.get('operation'), 9)} "
                   f"{_field(record.get('created'), 25)} {_field(name, 11)} {size:<10} "
                   f"{_field(record.get('prompt'))}{origin}")


commands = [history]
