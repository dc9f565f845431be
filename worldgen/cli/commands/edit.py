"""`worldgen edit`: regenerate a masked region of a scene, in both layers or in one."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import model_options, report_world, sampling_options


@click.command()
@click.argument("scene_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Mask image the size of the scene: white = change, black = keep.")
@click.option("--layers", type=click.Choice(["both", "image", "modality"]), default="both", show_default=True,
              help="Which layers to change in the region (the other is kept and conditions the change).")
@click.option("--strength", type=float, default=1.0, show_default=True,
              help="1.0 regenerates the region; lower keeps more of what is there.")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@model_options
@sampling_options(prompt_help="What the region should show (default: the scene's prompt).")
def edit(scene_dir, mask_file, layers, strength, from_version, **kw):
    """Regenerate the white region of --mask in SCENE_DIR; outside it nothing changes. Writes a new version.

    \b
    Example:
      worldgen edit fjord --mask boat.png --prompt "a red wooden boat on the water"
    """
    from ..options import task_options, task_pipeline
    from ..progress import progress_for

    world = task_pipeline(kw, scene_dir).edit(scene_dir, mask_file, layers=layers, strength=strength,
                                              version=from_version, glb=kw["glb"],
                                              progress=progress_for(kw["quiet"]), **task_options(kw))
    report_world(world, kw, f"edited {world.params['changed_pixels']} pixels: {world.scene.path}/ version {world.version}")


commands = [edit]
