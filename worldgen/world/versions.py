"""A task's result kept: a new version of the scene it started from (never overwriting that one), or
a new scene for outside files; then the GLB refresh (``outputs.glb_target``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


PLACEHOLDER_BACKEND = "procedural"
PLACEHOLDER_SETTINGS = {"painter": "placeholder"}


def record_params(**params) -> dict:
    """What the manifest keeps about a run (no arrays, no None noise)."""
    return {k: v for k, v in params.items() if v is not None and not hasattr(v, "shape")}


def write_result(scene_path: Optional[Path], scene, snapshot, backend, operation: str, *, seed: int, params: dict,
                 negative_prompt: Optional[str] = "", glb: Optional[Path] = None):
    """``snapshot`` as a new version of ``scene`` (parent: ``params["from_version"]``), or as a new scene
    at ``scene_path``; then its GLB. ``backend`` None: made without a model (a placeholder).
    ``negative_prompt`` None: the version records no prompt fields (a placement inherits them). Returns
    (scene, version). The version is written first: an interrupted export never costs it."""
    from ..export_files import export_to_file
    from ..scene.store import Scene
    from .outputs import glb_target

    common = dict(operation=operation, seed=seed, params=params)
    if backend is not None:
        common.update(backend=backend.name, backend_settings=backend.settings())
    else:  # the model-free placeholder painter made it: never record the scene's earlier backend
        common.update(backend=PLACEHOLDER_BACKEND, backend_settings=dict(PLACEHOLDER_SETTINGS))
    if negative_prompt is not None:
        common.update(prompt=snapshot.prompt, modality=getattr(backend, "modality", None),
                      negative_prompt=negative_prompt)
    if scene is not None:
        version = scene.add_version(snapshot, **common, parent=params.get("from_version"))
    else:
        scene = Scene.create(scene_path, snapshot, **common)
        version = scene.current
    target = glb_target(scene.path, glb)
    if target is not None:
        export_to_file(snapshot, "glb", target)
    return scene, version
