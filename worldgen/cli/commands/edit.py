"""`worldgen edit`: regenerate a masked region of a scene, in both layers or in one."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note
from ._taskcli import model_options, sampling_options


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
    from ...sampler.requests import EditRequest
    from ...scene.store import Scene
    from ._taskcli import load_backend, progress_of, read_mask, record_params, task_fields, write_result

    scene = Scene.open(scene_dir)
    snapshot = scene.load(from_version)
    request = EditRequest(**task_fields(kw), mask=read_mask(mask_file), layers=layers, strength=strength)
    request.check_fits(*snapshot.size)
    backend = load_backend(kw, scene)
    result = backend.edit(request, snapshot, progress_of(kw["quiet"]))
    scene, version = write_result(None, scene, result, backend, "edit", request, kw["seed"],
                                  record_params(mask=str(mask_file), layers=layers, strength=strength,
                                                steps=request.steps, guidance=request.guidance,
                                                scheduler=kw.get("scheduler"), method=request.method,
                                                changed_pixels=int(request.mask.sum()), from_version=from_version), glb=kw["glb"])
    note(f"edited {int(request.mask.sum())} pixels: {scene.path}/ version {version}", kw["quiet"])


commands = [edit]
