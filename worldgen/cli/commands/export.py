"""`worldgen export`: a scene -> a GLB mesh, a PLY point cloud or Gaussian splats."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import json_option, quiet_option


def parse_option_pairs(pairs: tuple[str, ...]) -> dict:
    """('step=2', 'sky=false') -> {'step': '2', 'sky': 'false'}; exporters convert the types."""
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE, e.g. -O step=2", param_hint="-O/--option")
        options[name] = value.strip()
    return options


@click.command()
@click.argument("scene", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--format", "fmt", default="glb", show_default=True,
              help="Exporter: glb (textured mesh), ply (point cloud), splat (Gaussian splats), or a plugin's name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write. Default: beside the scene folder, named after it (fjord/ -> fjord.glb).")
@click.option("--version", "version", type=int, default=None, help="Scene version to export (default: the latest).")
@click.option("-O", "--option", "option_pairs", multiple=True, metavar="NAME=VALUE",
              help="Exporter option, repeatable: e.g. -O step=2 -O collider=true (glb), -O voxel_size=0.05 (ply). "
                   "Geometry overrides for any format: near, far, eye_height, disparity_scale, disparity_shift, "
                   "sky_disparity, fit_ground.")
@click.option("--list-options", is_flag=True, help="Print the chosen exporter's options and exit.")
@quiet_option
@json_option
def export(scene, fmt, output, version, option_pairs, list_options, quiet, as_json):
    """Export SCENE (a scene folder) as a 3D file: y up, metres; GLB puts the ground at y = 0 with the eye
    above it (-O origin=camera: the eye at the origin), PLY and splats the camera at the origin."""
    from ...export_files import default_export_path, export_to_file, exporter_for
    from ...output_paths import check_output_path
    from ...scene.store import Scene
    from ..grammar import native_output_silenced, report
    from ..progress import progress_for

    spec = exporter_for(fmt)
    if list_options:
        click.echo(f"{spec.name} ({spec.extension}): {spec.description}")
        for name in spec.options:
            click.echo(f"  -O {name}=...")
        return
    options = parse_option_pairs(option_pairs)
    target = output or default_export_path(scene, fmt)
    check_output_path(target, what="-o")  # before the scene is read: a bad path costs nothing
    snapshot = Scene.open(scene).load(version)
    with native_output_silenced(quiet):  # the ply exporter runs open3d
        written = export_to_file(snapshot, fmt, target, options, progress=progress_for(quiet))
    report(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)", quiet=quiet, as_json=as_json, path=written,
           format=spec.name, scene=scene, version=snapshot_version(scene, version), bytes=written.stat().st_size)


def snapshot_version(scene, version):
    """The version number exported: the one asked for, else the scene's latest."""
    from ...scene.store import Scene

    return version if version is not None else Scene.open(scene).current


commands = [export]
