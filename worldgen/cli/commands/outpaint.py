"""`worldgen outpaint`: extend a scene (wider span, taller), or grow a panorama around one photo."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note
from ._taskcli import model_options, sampling_options


@click.command()
@click.argument("scene_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--span", type=float, default=None,
              help="New horizontal span in degrees (default: 360 for a photo, unchanged for a scene).")
@click.option("--height", type=int, default=None, help="New height in pixels (default: unchanged).")
@click.option("--x", "x", type=int, default=None,
              help="Column of the known part in the new canvas (default: 0 for a scene, centred for a photo).")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Make a panorama around this photo (it stays untouched in its region); needs -o.")
@click.option("--fov", type=float, default=None, help="Horizontal field of view of --photo, degrees (default: EXIF).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="New scene folder for --photo.")
@model_options
@sampling_options(prompt_help="Prompt for the new parts (default: the scene's; required with --photo).")
def outpaint(scene_dir, span, height, x, from_version, photo, fov, output, **kw):
    """Extend SCENE_DIR to a wider span and/or taller canvas (new version), or turn --photo into a panorama.

    \b
    Examples:
      worldgen outpaint fjord --span 360
      worldgen outpaint fjord --height 768
      worldgen outpaint --photo beach.jpg --fov 70 --prompt "a sandy beach" -o beach
    """
    from ...errors import UserInputError
    from ...layers import Snapshot
    from ...projection import CylindricalProjection
    from ...sampler.requests import OutpaintRequest
    from ...scene import Scene
    from ._taskcli import load_backend, new_scene_path, progress_of, record_params, task_fields, write_result

    if (scene_dir is None) == (photo is None):
        raise UserInputError("give a SCENE folder to extend, or --photo FILE with -o (not both)")
    scene = None
    if scene_dir is not None:
        scene = Scene.open(scene_dir)
        snapshot = scene.load(from_version)
        x = 0 if x is None else x  # the old columns keep their azimuths
    else:
        if not kw.get("prompt"):
            raise UserInputError("--photo needs --prompt describing the world around it")
        output = new_scene_path(output)
        from ...explore.photo import photo_fov, read_photo

        image = read_photo(photo)
        fov = photo_fov(photo, fov)
        snapshot = Snapshot(image=image, modalities={},
                            projection=CylindricalProjection(image.shape[1], image.shape[0], fov))
        span = 360.0 if span is None else span
    request = OutpaintRequest(**task_fields(kw), span_deg=span, height=height, x=x)
    request.canvas(*snapshot.size, snapshot.projection.span_deg)  # size errors before the model loads
    backend = load_backend(kw, scene)
    if photo is None:
        result = backend.outpaint(request, snapshot, progress_of(kw["quiet"]))
    else:  # issue 22: resampled into the cylinder, depth estimated, colours matched (worldgen.explore)
        from ...explore.photo_scene import outpaint_photo

        result = outpaint_photo(backend, image, fov, request, progress_of(kw["quiet"]))
    operation = "outpaint" if photo is None else "outpaint-photo"
    scene, version = write_result(output, scene, result, backend, operation, request, kw["seed"],
                                  record_params(span_deg=result.projection.span_deg, height=result.size[1], x=x,
                                                photo=str(photo) if photo else None, fov=fov if photo else None,
                                                steps=request.steps, guidance=request.guidance,
                                                scheduler=kw.get("scheduler"), method=request.method,
                                                from_version=from_version), glb=kw["glb"])
    note(f"outpainted to {result.size[0]}x{result.size[1]} ({result.projection.span_deg:g} deg): "
         f"{scene.path}/ version {version}", kw["quiet"])


commands = [outpaint]
