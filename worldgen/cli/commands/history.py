"""`worldgen history`: the versions of a scene."""

from __future__ import annotations

import click

from ..options import json_option


def _field(value, width: int = 0) -> str:
    """A manifest value as one safe cell: any type becomes text, control characters are escaped (a
    prompt cannot forge lines or send escape sequences to the terminal), long text is cut."""
    from ...validation import printable

    text = printable(value if isinstance(value, str) else ("" if value is None else str(value)))
    return f"{text:<{width}}" if width else text


@click.command()
@click.argument("scene", type=click.Path(file_okay=False))
@json_option
def history(scene, as_json):
    """List every version of SCENE: number, operation, date, backend, size, prompt (and where it started).
    With --json: the scene's version records as scene.json keeps them, and which one is current."""
    from ...scene.store import Scene
    from ..grammar import report

    s = Scene.open(scene)
    if as_json:
        return report("", quiet=True, as_json=True, scene=scene, current=s.current, versions=s.versions)
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
