"""Placing an object in a scene: who paints it (the one place that is decided), then the new version."""

from __future__ import annotations

from typing import Any

from . import backends as _backends
from .result import World
from .tasks import keep_result, resolve_target


def choose_painter(pipe, painter: str, scene) -> Any:
    """The backend that paints the object, or None for the placeholder painter: "procedural" never
    loads a model; "auto" uses the pipeline's model when one is given, the scene was made by JointNet,
    or a default model is registered (``backends.painter_is_model``)."""
    from ..geometry.placement import can_edit

    if pipe.name == "procedural" or not _backends.painter_is_model(painter, pipe.settings.get("model"), scene):
        return None
    backend = pipe.backend
    return backend if can_edit(backend) else None


def place(pipe, target, what: str, *, distance: float, painter: str, version, glb, progress, sampling: dict,
          placement: dict, record: dict) -> World:
    """``what`` placed at ``distance`` metres in ``target`` (see ``WorldPipeline.place``)."""
    from ..geometry.placement import Placement, place_object
    from ..validation import check
    from .inputs import as_mask
    from .outputs import glb_target

    # Checked although the placeholder painter ignores them: the same input is valid or not
    # whichever painter runs (worldgen.validation's rules, as for every task).
    check("guidance", sampling["guidance"], "--guidance")
    check("steps", sampling["steps"], "--steps")
    check("strength", placement.get("border_strength", 0.5), "--border-strength")
    if glb is not None:
        glb_target(".", glb)
    source = resolve_target(target, version)
    mask = placement.pop("mask", None)
    if mask is not None:
        placement["mask"] = as_mask(mask)
        placement.setdefault("mask_source", str(mask) if isinstance(mask, str) or hasattr(mask, "suffix") else None)
    chosen = Placement(prompt=what, distance=distance, **placement)
    backend = choose_painter(pipe, painter, source.scene)
    result, info = place_object(source.snapshot, chosen, backend, progress=progress, **sampling)
    world = keep_result(source, result, backend, "place", seed=sampling["seed"], params={"placement": info, **record},
                        negative_prompt=None, glb=glb)
    world.report["painted"] = backend is not None
    return world
