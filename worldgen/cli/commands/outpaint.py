"""`worldgen outpaint`: extend a scene (wider span, taller), or grow a panorama around one photo."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import model_options, new_scene_glb, report_world, sampling_options


@click.command()
@click.argument("scene_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--span", type=float, default=None,
              help="New horizontal span in degrees (default: 360 for a photo, unchanged for a scene).")
@click.option("--height", type=int, default=None, help="New height in pixels (default: unchanged).")
@click.option("--x", "x", type=int, default=None,
              help="Column of the known part in the new canvas (default: 0 for a scene, centred for a photo).")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@click.option("--image", "--photo", "photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Make a panorama around this photo (it stays untouched in its region); needs -o. "
                   "--photo is an alias.")
@click.option("--fov", type=float, default=None, help="Horizontal field of view of --image, degrees (default: EXIF).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder for --image (its GLB goes beside it).")
@model_options
@sampling_options(prompt_help="Prompt for the new parts (default: the scene's; required with --photo).")
def outpaint(scene_dir, span, height, x, from_version, photo, fov, output, **kw):
    """Extend SCENE_DIR to a wider span and/or taller canvas (new version), or turn a photo (--image) into a panorama.

    \b
    Examples:
      worldgen outpaint fjord --span 360
      worldgen outpaint fjord --height 768
      worldgen outpaint --image beach.jpg --fov 70 --prompt "a sandy beach" -o beach
    """
    from ..options import task_options, task_pipeline
    from ..progress import progress_for

    if (scene_dir is None) == (photo is None):
        raise click.UsageError("give a SCENE folder to extend, or --image FILE with -o (not both)")
    pipe = task_pipeline(kw, scene_dir)
    common = dict(x=x, glb=kw["glb"], progress=progress_for(kw["quiet"]), **task_options(kw))
    if scene_dir is not None:
        world = pipe.outpaint(scene_dir, span=span, height=height, version=from_version, **common)
    else:
        if not kw.get("prompt"):
            raise click.UsageError("--image needs --prompt describing the world around it")
        from ...world.outputs import new_scene_path

        output = new_scene_path(output)
        kw["glb"] = common["glb"] = new_scene_glb(output, kw["glb"])
        world = pipe.outpaint_photo(photo, fov=fov, span=360.0 if span is None else span, height=height, output=output,
                                    **common)
    report_world(world, kw, f"outpainted to {world.size[0]}x{world.size[1]} "
                            f"({world.snapshot.projection.span_deg:g} deg): {world.scene.path}/ version {world.version}")


commands = [outpaint]
