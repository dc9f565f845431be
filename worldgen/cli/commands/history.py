"""`worldgen history`: the versions of a scene."""

from __future__ import annotations

import click


@click.command()
@click.argument("scene", type=click.Path(file_okay=False))
def history(scene):
    """List every version of SCENE: number, operation, date, backend, size, prompt."""
    from ...scene import Scene

    s = Scene.open(scene)
    for record in s.versions:
        size = "x".join(str(n) for n in record.get("size", []))
        marker = "*" if record["version"] == s.current else " "
        click.echo(f"{marker}v{record['version']:<3} {record['operation']:<9} {record.get('created', ''):<25} "
                   f"{record['backend'].get('name', '?'):<11} {size:<10} {record.get('prompt', '')}")


commands = [history]
