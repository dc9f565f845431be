"""`worldgen place`: put an object into a scene at a chosen distance (depth-aware composition)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import glb_option, json_option, model_options, note, quiet_option, report_world, seed_option

SHAPE_CHOICES = ["flat", "curved", "round"]  # worldgen.placement.SHAPES (not imported: --help stays instant)


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
@glb_option
@seed_option
@quiet_option
@json_option
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
    world = _place(scene_dir, what, distance, azimuth, width, height, lift, shape, mask_file, no_occlude, border,
                   border_strength, backend_name, from_version, kw)
    report_world(world, kw, f"placed {what!r} at {distance:g} m ({world.params['placement']['pixels']} pixels): "
                            f"{world.scene.path}/ version {world.version}")


def _place(scene_dir, what, distance, azimuth, width, height, lift, shape, mask_file, no_occlude, border,
           border_strength, backend_name, from_version, kw):
    from ...world.backends import PLACEHOLDER_HINT
    from ..options import task_pipeline
    from ..progress import progress_for

    pipe = task_pipeline(kw, scene_dir)
    world = pipe.place(scene_dir, what, distance=distance, azimuth=azimuth, width=width, height=height, lift=lift,
                       shape=shape, mask=mask_file, occlude=not no_occlude, border_px=border,
                       border_strength=border_strength, painter=backend_name, version=from_version, glb=kw["glb"],
                       progress=progress_for(kw["quiet"]), steps=kw["steps"], guidance=kw["guidance"],
                       seed=kw["seed"], scheduler=kw.get("scheduler"), negative_prompt=kw["negative_prompt"],
                       method=kw["method"])
    if not world.report["painted"]:
        note(PLACEHOLDER_HINT, kw["quiet"])
    return world


commands = [place]
