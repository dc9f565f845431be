"""Channel-wise conversions: `worldgen depth` (RGB -> modality) and `worldgen paint` (modality -> RGB)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import model_options, new_scene_glb, report_world, sampling_options


@click.command()
@click.argument("image_file", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder (image + estimated modality); not for a SCENE, which gets a new version.")
@click.option("--span", type=float, default=None,
              help="Degrees the image spans; 360 wraps seamlessly (default: 360 if at least twice as wide as tall, "
                   "else 60).")
@model_options
@sampling_options(default_guidance=1.0, prompt_help="Optional caption of the image (guides the estimate).")
def depth(image_file, output, span, **kw):
    """Estimate the model's modality (depth) for IMAGE_FILE, a panorama or a single image, or add a
    depth layer to a SCENE folder as a new version (its RGB and other layers kept).

    The image is kept exactly; the modality is generated for it. Sizes must be multiples of 8.

    \b
    Example:
      worldgen depth pano.png -o pano-rgbd
    """
    from ...world.outputs import new_scene_path
    from ..options import task_options, task_pipeline
    from ..progress import progress_for

    if image_file.is_dir():  # a scene: its depth becomes a new version there
        from ...world.depth_layer import add_depth_version

        if output is not None:
            raise click.UsageError(f"{image_file} is a scene: its depth becomes a new version there; drop -o")
        scene, version = add_depth_version(image_file, kw, steps=kw["steps"], seed=kw["seed"],
                                           negative_prompt=kw["negative_prompt"], glb=kw["glb"],
                                           progress=progress_for(kw["quiet"]))
        from ..grammar import report
        from ...world.outputs import glb_target

        return report(f"added a depth layer: {scene.path}/ version {version}", quiet=kw["quiet"],
                      as_json=kw["as_json"], scene=scene.path, version=version,
                      glb=glb_target(scene.path, kw["glb"]), operation="depth")
    output = new_scene_path(output)
    glb = new_scene_glb(output, kw["glb"])
    pipe = task_pipeline(kw)
    world = pipe.depth(image_file, span=span, output=output, glb=glb, progress=progress_for(kw["quiet"]),
                       **task_options(kw))
    report_world(world, kw, f"estimated {world.modality} for {image_file.name}: scene {world.scene.path}/ "
                            f"and {glb}", glb=glb)


@click.command()
@click.argument("scene_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@click.option("--modality-file", "modality_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Paint an outside modality file instead (.npy, or a 16-bit PNG for depth); needs -o.")
@click.option("--span", type=float, default=360.0, show_default=True, help="Span of an outside modality file, degrees.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder for --modality-file (its GLB goes beside it).")
@model_options
@sampling_options(prompt_help="What to paint (default: the scene's prompt).")
def paint(scene_dir, from_version, modality_file, span, output, **kw):
    """Paint new RGB onto SCENE_DIR's geometry (its modality is kept exactly); writes a new version.

    \b
    Examples:
      worldgen paint fjord --prompt "the same fjord in winter, snow"
      worldgen paint --modality-file depth.png --prompt "a cave" -o cave
    """
    from ..options import task_options, task_pipeline
    from ..progress import progress_for

    if (scene_dir is None) == (modality_file is None):
        raise click.UsageError("give a SCENE folder, or --modality-file FILE with -o (not both)")
    pipe = task_pipeline(kw, scene_dir)
    target = scene_dir
    if modality_file is not None:
        from ...world.outputs import new_scene_path

        output = new_scene_path(output)
        kw["glb"] = new_scene_glb(output, kw["glb"])
        target = pipe.snapshot_from_files(None, modality_file, span)
    world = pipe.paint(target, version=from_version, output=output, glb=kw["glb"],
                       progress=progress_for(kw["quiet"]), **task_options(kw))
    report_world(world, kw, f"painted {world.size[0]}x{world.size[1]}: {world.scene.path}/ version {world.version}")


commands = [depth, paint]
