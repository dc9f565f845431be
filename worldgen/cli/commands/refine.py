"""`worldgen refine`: tile-based SDEdit upsampling/refinement of a scene (or of outside RGB-D files)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import model_options, new_scene_glb, parse_size, report_world, sampling_options


@click.command()
@click.argument("scene_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--scale", type=float, default=2.0, show_default=True, help="Upsampling factor (1 refines in place).")
@click.option("--size", default=None, help="Target WIDTHxHEIGHT instead of --scale.")
@click.option("--strength", type=float, default=0.4, show_default=True,
              help="How much to change: 0.4 refines detail, 1.0 regenerates.")
@click.option("--keep", type=click.Choice(["image", "modality"]), default=None,
              help="Keep this layer exactly and refine only the other, conditioned on it.")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@click.option("--image", "image_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Refine an outside panorama: its RGB image (with --modality-file and -o).")
@click.option("--modality-file", "modality_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The outside panorama's modality: .npy, or a 16-bit PNG for depth.")
@click.option("--span", type=float, default=360.0, show_default=True, help="Span of an outside panorama, degrees.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder for outside files (its GLB goes beside it).")
@model_options
@sampling_options()
def refine(scene_dir, scale, size, strength, keep, from_version, image_file, modality_file, span, output, **kw):
    """Refine or upsample SCENE_DIR's RGB and modality (or one of them, keeping the other); writes a new version.

    \b
    Examples:
      worldgen refine fjord --scale 2
      worldgen refine fjord --scale 1 --strength 0.3 --keep modality
      worldgen refine --image pano.png --modality-file depth.png -o pano-hd
    """
    from ..options import task_options, task_pipeline
    from ..progress import progress_for

    if (scene_dir is None) == (image_file is None):
        raise click.UsageError("give a SCENE folder, or outside files with --image, --modality-file and -o (not both)")
    if image_file is not None and modality_file is None:
        raise click.UsageError("--image needs its --modality-file (the layer to refine with it)")
    target = scene_dir
    pipe = task_pipeline(kw, scene_dir)
    if image_file is not None:
        from ...world.outputs import new_scene_path

        output = new_scene_path(output)
        kw["glb"] = new_scene_glb(output, kw["glb"])
        target = pipe.snapshot_from_files(image_file, modality_file, span)
    world = pipe.refine(target, scale=scale, size=parse_size(size) if size else None, strength=strength, keep=keep,
                        version=from_version, output=output, glb=kw["glb"], progress=progress_for(kw["quiet"]),
                        **task_options(kw))
    report_world(world, kw, f"refined to {world.size[0]}x{world.size[1]}: {world.scene.path}/ version {world.version}")


commands = [refine]
