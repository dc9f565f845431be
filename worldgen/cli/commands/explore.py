"""`worldgen sphere` and `worldgen layers`: make a scene explorable (issue 22).

The work is in ``worldgen.explore``; these commands read the scene, pick the backend and write
the result as a new version."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note
from ._taskcli import model_options, sampling_options


def explore_backend(kw: dict, scene, task: str):
    """The scene's own backend when it does ``task`` itself (procedural worlds render it directly),
    else JointNet with the command's model options (the generic inpainting path)."""
    from ...explore.inpaint import offers
    from ...registry import get_registry
    from ._taskcli import load_backend

    record = scene.record().get("backend", {})
    name = record.get("name")
    if kw.get("model") is None and name and name != "jointnet":
        try:
            spec = get_registry().backend(name)
        except Exception:  # an unknown or uninstalled backend: the generic path still works
            spec = None
        if spec is not None and task in spec.tasks:
            backend = spec.load(dict(record.get("settings", {})))
            if offers(backend, task):
                return backend
    return load_backend(kw, scene)


def _write(scene, result, backend, operation: str, request, kw: dict, params: dict):
    from ._taskcli import record_params, write_result

    return write_result(None, scene, result, backend, operation, request, kw["seed"],
                        record_params(steps=request.steps, guidance=request.guidance, method=request.method,
                                      **params), glb=kw["glb"])


@click.command()
@click.argument("scene_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--width", type=int, default=0, help="Equirect width in pixels (default: the band's 360-degree width).")
@click.option("--view-size", type=int, default=512, show_default=True,
              help="Side of the square views the caps are inpainted in (multiple of 8).")
@click.option("--overlap", "overlap_deg", type=float, default=12.0, show_default=True,
              help="How far, in degrees, each cap view reaches into the band.")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@model_options
@sampling_options(prompt_help="What the sky and ground should show (default: the scene's prompt).")
def sphere(scene_dir, width, view_size, overlap_deg, from_version, **kw):
    """Complete SCENE_DIR to the full 360 x 180-degree sphere (new version; the band stays as it is).

    \b
    Then: worldgen export SCENE -f equirect   (or -f cubemap)
    """
    from ...explore.sphere import SphereRequest, complete_sphere
    from ...scene import Scene
    from ._taskcli import progress_of, task_fields

    scene = Scene.open(scene_dir)
    snapshot = scene.load(from_version)
    request = SphereRequest(**task_fields(kw), width=width, view_size=view_size, overlap_deg=overlap_deg)
    backend = explore_backend(kw, scene, "sphere")
    result = complete_sphere(backend, snapshot, request, progress_of(kw["quiet"]))
    scene, version = _write(scene, result, backend, "sphere", request, kw,
                            dict(view_size=view_size, overlap_deg=overlap_deg, from_version=from_version,
                                 projection="equirectangular", width=int(result.sphere.distance.shape[1])))
    h, w = result.sphere.distance.shape
    note(f"sphere {w}x{h} ({result.sphere.known.mean() * 100:.1f} % filled): {scene.path}/ version {version}",
         kw["quiet"])


@click.command()
@click.argument("scene_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--move", type=float, default=5.0, show_default=True,
              help="Fill what a step this many metres off the eye reveals behind each depth cut.")
@click.option("--radius", type=int, default=0,
              help="At most this many pixels behind each cut (default: 1/32 of the width).")
@click.option("--threshold", type=float, default=0.1, show_default=True,
              help="Relative jump in distance that makes a depth cut (0.1 = 10 %).")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@model_options
@sampling_options(prompt_help="What the hidden background should show (default: the scene's prompt).")
def layers(scene_dir, move, radius, threshold, from_version, **kw):
    """Inpaint what the eye could not see behind every depth cut of SCENE_DIR, as background layers
    of a new version (the GLB then shows them off the eye instead of stretched skirts)."""
    from ...explore.background import LayersRequest, complete_layers
    from ...scene import Scene
    from ._taskcli import progress_of, task_fields

    scene = Scene.open(scene_dir)
    snapshot = scene.load(from_version)
    request = LayersRequest(**task_fields(kw), radius=radius, threshold=threshold, move=move)
    backend = explore_backend(kw, scene, "layers")
    result = complete_layers(backend, snapshot, request, progress_of(kw["quiet"]))
    hidden = int(result.background.mask.sum())
    scene, version = _write(scene, result, backend, "layers", request, kw,
                            dict(move=move, radius=radius, threshold=threshold, hidden_pixels=hidden, from_version=from_version))
    note(f"background behind {hidden} pixels: {scene.path}/ version {version}", kw["quiet"])


commands = [sphere, layers]
