"""`worldgen place`: put an object into a scene at a chosen distance (depth-aware composition)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import note, quiet_option, seed_option
from ._taskcli import model_options

SHAPE_CHOICES = ["flat", "curved", "round"]  # worldgen.geometry.placement.SHAPES (not imported: --help stays instant)


@click.command()
@click.argument("scene_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("what")
@click.option("--distance", type=float, required=True, help="Horizontal distance of the object's nearest point, metres.")
@click.option("--azimuth", type=float, default=None,
              help="Azimuth of the object's centre in degrees (0 = the panorama's first column, growing right).")
@click.option("--width", type=float, default=None, help="Object width in metres (with --azimuth).")
@click.option("--height", type=float, default=None, help="Object height in metres (default: its width).")
@click.option("--lift", type=float, default=0.0, show_default=True, help="Raise the object's base above the ground, metres.")
@click.option("--shape", type=click.Choice(SHAPE_CHOICES), default="flat", show_default=True,
              help="Depth profile: flat (a billboard facing you), curved (constant distance), round (an upright cylinder).")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Instead of --azimuth/--width: a mask image the size of the scene, white where the object goes.")
@click.option("--no-occlude", is_flag=True,
              help="Draw the object over nearer content too (default: nearer things stay in front).")
@click.option("--border", type=click.IntRange(min=0), default=8, show_default=True,
              help="Width in pixels of the band inside the object's outline that is refined in both layers.")
@click.option("--border-strength", type=float, default=0.5, show_default=True, help="How much the border band may change.")
@click.option("--backend", "backend_name", type=click.Choice(["auto", "jointnet", "procedural"]), default="auto",
              show_default=True,
              help="Who paints the object: jointnet (diffusion), procedural (a plain placeholder, no model), "
                   "auto (jointnet when a model is known).")
@click.option("--version", "from_version", type=int, default=None, help="Scene version to start from (default: latest).")
@model_options
@click.option("--negative", "negative_prompt", default="", help="Negative prompt.")
@click.option("--steps", type=int, default=50, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=float, default=7.5, show_default=True, help="Classifier-free guidance scale.")
@click.option("--method", type=click.Choice(["auto", "masked", "blend"]), default="auto", show_default=True,
              help="How the known depth conditions the model (see `worldgen edit --help`).")
@click.option("--glb", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Export the result to this GLB (default: refresh SCENE.glb beside the scene folder when it exists).")
@seed_option
@quiet_option
def place(scene_dir, what, distance, azimuth, width, height, lift, shape, mask_file, no_occlude, border,
          border_strength, backend_name, from_version, **kw):
    """Place WHAT (a prompt) in SCENE_DIR at --distance metres; writes a new version and refreshes its GLB.

    The object's depth is set first (a billboard, curved or round profile at that distance, standing
    on the ground), then its RGB is painted onto that depth, then its outline is refined in both
    layers. Outside the object nothing changes.

    \b
    Examples:
      worldgen place fjord "a wooden cabin" --azimuth 40 --distance 12 --width 8
      worldgen place fjord "a stone tower" --mask tower.png --distance 30 --shape round
    """
    from ...geometry.placement import Placement, place_object
    from ...scene.store import Scene
    from ...validation import check
    from ._taskcli import glb_target, progress_of, read_mask

    # Checked here although the placeholder painter ignores them: the same input is valid or not
    # whichever painter runs (worldgen.validation's rules, as for every task).
    check("guidance", kw["guidance"], "--guidance")
    check("steps", kw["steps"], "--steps")
    check("strength", border_strength, "--border-strength")
    glb_target(scene_dir, kw["glb"])
    scene = Scene.open(scene_dir)
    snapshot = scene.load(from_version)
    placement = Placement(prompt=what, distance=distance, azimuth=azimuth, width=width, height=height, lift=lift,
                          shape=shape, mask=read_mask(mask_file) if mask_file else None,
                          mask_source=str(mask_file) if mask_file else None, occlude=not no_occlude,
                          border_px=border, border_strength=border_strength)
    backend = choose_painter(backend_name, kw, scene)
    if backend is None:
        note("no JointNet model for this scene, so the object is a plain placeholder shape at the right depth; "
             "pass --model to paint it with diffusion", kw["quiet"])
    result, info = place_object(snapshot, placement, backend, steps=kw["steps"], guidance=kw["guidance"],
                                seed=kw["seed"], scheduler=kw.get("scheduler"), negative_prompt=kw["negative_prompt"],
                                method=kw["method"], progress=progress_of(kw["quiet"]))
    version = record_placement(scene, result, backend, info, kw["seed"], kw["glb"], from_version)
    note(f"placed {what!r} at {distance:g} m ({info['pixels']} pixels): {scene.path}/ version {version}", kw["quiet"])


def choose_painter(name: str, kw: dict, scene):
    """The backend that paints the object, or None for the placeholder painter. auto: JointNet when
    --model is given, the scene was made by JointNet, or a default model is registered."""
    from ...registry import get_registry
    from ._taskcli import load_backend

    if name == "procedural":
        return None
    if name == "auto" and not kw.get("model"):
        made_by_jointnet = scene.record().get("backend", {}).get("name") == "jointnet"
        spec = get_registry().backend("jointnet")
        if not made_by_jointnet and not (spec.available is not None and spec.available()):
            return None
    return load_backend(kw, scene)


def record_placement(scene, result, backend, info: dict, seed: int, glb, from_version=None) -> int:
    """Write the placed result as a new version (operation "place") and refresh or write its GLB."""
    from ...export_files import export_to_file
    from ._taskcli import glb_target

    params = {"placement": info, "from_version": from_version} if from_version else {"placement": info}
    if backend is not None:
        version = scene.add_version(result, operation="place", seed=seed, backend=backend.name,
                                    backend_settings=backend.settings(), params=params, parent=from_version)
    else:
        version = scene.add_version(result, operation="place", seed=seed, params=params, parent=from_version)
    target = glb_target(scene.path, glb)
    if target is not None:
        export_to_file(result, "glb", target)
    return version


commands = [place]
