"""What a scene task works on, and where its result goes.

A task (refine, outpaint, edit, paint, place, depth) starts from a *target*: a scene (a ``Scene``
or its folder, optionally an older version), a ``World`` or a bare ``Snapshot``. Its result is a
new version of that scene (never overwriting the one it started from) with the GLB refreshed; for
a world not saved anywhere, a new scene at ``output`` when given, else a world kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .result import World


@dataclass
class Target:
    scene: Any  # a Scene, or None for a world in memory
    snapshot: Any
    from_version: Optional[int] = None  # the version the task starts from when it is not the latest


def resolve_target(target, version: Optional[int] = None) -> Target:
    """A task's starting point from a Scene, a scene folder, a World or a Snapshot."""
    from ..errors import UserInputError
    from ..scene.snapshot import Snapshot
    from ..scene.store import Scene

    if isinstance(target, World):
        if target.scene is not None and version is None:
            latest = target.version == target.scene.current
            return Target(target.scene, target.snapshot, None if latest else target.version)
        target = target.scene if target.scene is not None else target.snapshot
    if isinstance(target, Snapshot):
        if version is not None:
            raise UserInputError("version= picks a version of a scene; this world is not saved as one")
        return Target(None, target)
    if isinstance(target, (str, Path)):
        target = Scene.open(Path(target))
    if isinstance(target, Scene):
        return Target(target, target.load(version), version)
    raise UserInputError(f"a task needs a scene folder, a Scene or a World, not {type(target).__name__}")


def keep_result(target: Target, snapshot, backend, operation: str, *, seed: int, params: dict,
                negative_prompt: Optional[str] = "", output: Optional[Path] = None,
                glb: Optional[Path] = None) -> World:
    """The task's result as a World: a new version of the target's scene (or a new scene at ``output``),
    with its GLB refreshed; kept in memory when the target is not a scene and no output is given."""
    from .versions import write_result
    params = dict(params, from_version=target.from_version) if target.from_version else dict(params)
    from .versions import PLACEHOLDER_BACKEND, PLACEHOLDER_SETTINGS

    world = World(snapshot, operation=operation, seed=seed, backend=getattr(backend, "name", PLACEHOLDER_BACKEND),
                  backend_settings=backend.settings() if backend is not None else dict(PLACEHOLDER_SETTINGS),
                  modality=getattr(backend, "modality", None), negative_prompt=negative_prompt or "", params=params)
    if target.scene is None and output is None:
        if glb is not None:
            world.export("glb", glb)
        return world
    world.scene, world.version = write_result(output, target.scene, snapshot, backend, operation, seed=seed,
                                              params=params, negative_prompt=negative_prompt, glb=glb)
    return world
