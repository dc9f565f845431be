"""`worldgen sphere` and `worldgen layers`: make a scene explorable (issue 22).

The work is in ``worldgen.explore`` behind ``WorldPipeline.sphere`` / ``layers``; these commands
parse options and print."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import model_options, model_settings, report_world, sampling_options, task_options

_VERSION = click.option("--version", "from_version", type=int, default=None,
                        help="Scene version to start from (default: latest).")


def _pipeline(kw: dict, scene_dir: Path, task: str):
    from ...api import WorldPipeline

    return WorldPipeline.for_explore(scene_dir, task, **model_settings(kw))


@click.command()
@click.argument("scene_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--width", type=int, default=0, help="Equirect width in pixels (default: the band's 360-degree width).")
@click.option("--view-size", type=int, default=512, show_default=True,
              help="Side of the square views the caps are inpainted in (multiple of 8).")
@click.option("--overlap", "overlap_deg", type=float, default=12.0, show_default=True,
              help="How far, in degrees, each cap view reaches into the band.")
@_VERSION
@model_options
@sampling_options(prompt_help="What the sky and ground should show (default: the scene's prompt).")
def sphere(scene_dir, width, view_size, overlap_deg, from_version, **kw):
    """Complete SCENE_DIR to the full 360 x 180-degree sphere (new version; the band stays as it is).

    \b
    Then: worldgen export SCENE -f equirect   (or -f cubemap)
    """
    from ..progress import progress_for

    world = _pipeline(kw, scene_dir, "sphere").sphere(
        scene_dir, width=width, view_size=view_size, overlap_deg=overlap_deg, version=from_version, glb=kw["glb"],
        progress=progress_for(kw["quiet"]), **task_options(kw))
    sphere_layer = world.snapshot.sphere
    h, w = sphere_layer.distance.shape
    report_world(world, kw, f"sphere {w}x{h} ({sphere_layer.known.mean() * 100:.1f} % filled): {world.scene.path}/ "
                            f"version {world.version}")


@click.command()
@click.argument("scene_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--move", type=float, default=5.0, show_default=True,
              help="Fill what a step this many metres off the eye reveals behind each depth cut.")
@click.option("--radius", type=int, default=0,
              help="At most this many pixels behind each cut (default: 1/32 of the width).")
@click.option("--threshold", type=float, default=0.1, show_default=True,
              help="Relative jump in distance that makes a depth cut (0.1 = 10 %).")
@_VERSION
@model_options
@sampling_options(prompt_help="What the hidden background should show (default: the scene's prompt).")
def layers(scene_dir, move, radius, threshold, from_version, **kw):
    """Inpaint what the eye could not see behind every depth cut of SCENE_DIR, as background layers
    of a new version (the GLB then shows them off the eye instead of stretched skirts)."""
    from ..progress import progress_for

    world = _pipeline(kw, scene_dir, "layers").layers(
        scene_dir, move=move, radius=radius, threshold=threshold, version=from_version, glb=kw["glb"],
        progress=progress_for(kw["quiet"]), **task_options(kw))
    report_world(world, kw, f"background behind {world.params['hidden_pixels']} pixels: {world.scene.path}/ version "
                            f"{world.version}")


commands = [sphere, layers]
