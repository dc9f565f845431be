"""Channel-wise conversions: `worldgen depth` (RGB -> modality) and `worldgen paint` (modality -> RGB)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note
from ._taskcli import model_options, sampling_options


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
    from ...sampler.requests import EstimateRequest
    from ...scene import read_image
    from ._taskcli import load_backend, new_scene_path, progress_of, record_params, task_fields, write_result

    if image_file.is_dir():
        from ...errors import UserInputError
        from .depth import depth_for_scene

        if output is not None:
            raise UserInputError(f"{image_file} is a scene: its depth becomes a new version there; drop -o")

        return depth_for_scene(image_file, kw)
    output = new_scene_path(output)
    image = read_image(image_file)
    h, w = image.shape[:2]
    span = span if span is not None else (360.0 if w >= 2 * h else 60.0)
    request = EstimateRequest(**task_fields(kw), image=image, span_deg=span)
    backend = load_backend(kw)
    result = backend.estimate(request, progress_of(kw["quiet"]))
    scene, _ = write_result(output, None, result, backend, "depth", request, kw["seed"],
                            record_params(source=str(image_file), span_deg=span, steps=request.steps,
                                          guidance=request.guidance, scheduler=kw.get("scheduler"),
                                          method=request.method), glb=kw["glb"])
    note(f"estimated {backend.modality} for {image_file.name}: scene {scene.path}/", kw["quiet"])


@click.command()
@click.argument("scene_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@click.option("--modality", "modality_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Paint an outside modality file instead (.npy, or a 16-bit PNG for depth); needs -o.")
@click.option("--span", type=float, default=360.0, show_default=True, help="Span of an outside modality file, degrees.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder for --modality.")
@model_options
@sampling_options(prompt_help="What to paint (default: the scene's prompt).")
def paint(scene_dir, from_version, modality_file, span, output, **kw):
    """Paint new RGB onto SCENE_DIR's geometry (its modality is kept exactly); writes a new version.

    \b
    Examples:
      worldgen paint fjord --prompt "the same fjord in winter, snow"
      worldgen paint --modality depth.png --prompt "a cave" -o cave
    """
    import numpy as np

    from ...errors import UserInputError
    from ...layers import Snapshot
    from ...projection import CylindricalProjection
    from ...sampler.requests import PaintRequest
    from ...scene import Scene
    from ._taskcli import (load_backend, modality_spec, new_scene_path, progress_of, read_modality_file,
                           record_params, task_fields, write_result)

    if (scene_dir is None) == (modality_file is None):
        raise UserInputError("give a SCENE folder, or --modality FILE with -o (not both)")
    request = PaintRequest(**task_fields(kw))
    scene = None
    if scene_dir is not None:
        scene = Scene.open(scene_dir)
        snapshot = scene.load(from_version)
        backend = load_backend(kw, scene)
    else:
        output = new_scene_path(output)
        backend = load_backend(kw)
        layer = read_modality_file(modality_file, modality_spec(backend.modality))
        h, w = layer.shape[:2]
        snapshot = Snapshot(image=np.zeros((h, w, 3), np.float32), modalities={backend.modality: layer},
                            projection=CylindricalProjection(w, h, span))
    result = backend.paint(request, snapshot, progress_of(kw["quiet"]))
    scene, version = write_result(output, scene, result, backend, "paint", request, kw["seed"],
                                  record_params(steps=request.steps, guidance=request.guidance,
                                                scheduler=kw.get("scheduler"), method=request.method,
                                                from_version=from_version), glb=kw["glb"])
    note(f"painted {result.size[0]}x{result.size[1]}: {scene.path}/ version {version}", kw["quiet"])


commands = [depth, paint]
