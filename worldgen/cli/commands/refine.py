"""`worldgen refine`: tile-based SDEdit upsampling/refinement of a scene (or of outside RGB-D files)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note, parse_size
from ._taskcli import model_options, sampling_options


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
              help="Refine an outside panorama: its RGB image (with --modality and -o).")
@click.option("--modality", "modality_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The outside panorama's modality: .npy, or a 16-bit PNG for depth.")
@click.option("--span", type=float, default=360.0, show_default=True, help="Span of an outside panorama, degrees.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder for outside files.")
@model_options
@sampling_options()
def refine(scene_dir, scale, size, strength, keep, from_version, image_file, modality_file, span, output, **kw):
    """Refine or upsample SCENE_DIR's RGB and modality (or one of them, keeping the other); writes a new version.

    \b
    Examples:
      worldgen refine fjord --scale 2
      worldgen refine fjord --scale 1 --strength 0.3 --keep modality
      worldgen refine --image pano.png --modality depth.png -o pano-hd
    """
    from ...errors import UserInputError
    from ...scene.snapshot import Snapshot
    from ...geometry.projection import CylindricalProjection
    from ...sampler.requests import RefineRequest
    from ...scene.image_files import read_image
    from ...scene.store import Scene
    from ._taskcli import (load_backend, modality_spec, new_scene_path, progress_of, read_modality_file,
                           record_params, task_fields, write_result)

    if (scene_dir is None) == (image_file is None):
        raise UserInputError("give a SCENE folder, or outside files with --image, --modality and -o (not both)")
    width = height = None
    if size:
        width, height = parse_size(size)
    request = RefineRequest(**task_fields(kw), scale=scale, strength=strength, keep=keep, width=width, height=height)
    scene = None
    if scene_dir is not None:
        scene = Scene.open(scene_dir)
        snapshot = scene.load(from_version)
        request.target_size(*snapshot.size)
        backend = load_backend(kw, scene)
    else:
        if modality_file is None:
            raise UserInputError("--image needs its --modality file (the layer to refine with it)")
        output = new_scene_path(output)
        image = read_image(image_file)
        projection = CylindricalProjection(image.shape[1], image.shape[0], span)
        request.target_size(projection.width, projection.height)
        backend = load_backend(kw)
        layer = read_modality_file(modality_file, modality_spec(backend.modality), image.shape[1], image.shape[0])
        snapshot = Snapshot(image=image, modalities={backend.modality: layer}, projection=projection)
    result = backend.refine(request, snapshot, progress_of(kw["quiet"]))
    scene, version = write_result(output, scene, result, backend, "refine", request, kw["seed"],
                                  record_params(scale=scale, strength=strength, keep=keep, steps=request.steps,
                                                guidance=request.guidance, scheduler=kw.get("scheduler"),
                                                method=request.method, from_version=from_version), glb=kw["glb"])
    note(f"refined to {result.size[0]}x{result.size[1]}: {scene.path}/ version {version}", kw["quiet"])


commands = [refine]
