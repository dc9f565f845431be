"""`worldgen plugins`: what is loaded, from which distribution, at which version."""

from __future__ import annotations

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List backends, modalities and exporters with their distribution and version."""
    import json

    from ...registry import get_registry

    rows = []
    for plugin in get_registry().plugins():
        summary = plugin.spec.summary() if hasattr(plugin.spec, "summary") else getattr(plugin.spec, "description", "")
        if plugin.spec.kind == "exporter":
            summary = f"{plugin.spec.extension}  {plugin.spec.description}"
        elif plugin.spec.kind == "backend":
            summary = f"tasks: {', '.join(plugin.spec.tasks)}  {plugin.spec.description}"
        rows.append({"group": plugin.group, "name": plugin.name, "distribution": plugin.distribution,
                     "version": plugin.version, "summary": summary})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['group']:<20} {row['name']:<12} {row['distribution']:<16} {row['version']:<8} {row['summary']}")


commands = [plugins]
