"""A depth layer added to an existing scene, as a new version (`worldgen depth SCENE`).

The depth comes from channel-wise inpainting with a depth model (``model``; else the scene's own model
when it has a depth branch; else the registered default; else the depth plugin's estimator, see
``backends/jointnet/depth_layer.py``). The RGB and every other layer of the version are kept as they
are; the version the task started from is never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def add_depth_version(scene_dir: Path, settings: dict, *, steps: Optional[int], seed: int, negative_prompt: str = "",
                      from_version: Optional[int] = None, glb: Optional[Path] = None, progress=None):
    """(scene, version) after adding depth to ``scene_dir``'s version ``from_version`` (default: current).
    ``settings``: model, base, device, dtype, scheduler (all optional)."""
    from ..backends.jointnet.depth_layer import add_depth
    from ..scene.store import Scene
    from .versions import record_params, write_result

    scene = Scene.open(scene_dir)
    snapshot = scene.load(from_version)
    backend = _depth_backend(settings, scene)
    result = add_depth(snapshot, backend, steps, seed, progress)
    previous = scene.record(from_version) if from_version else scene.record()
    recorded = backend.settings() if backend is not None else previous.get("backend", {}).get("settings", {})
    source = "model" if backend is not None else "registered model or estimator"
    return write_result(scene.path, scene, result, _Recorded(backend, previous, recorded), "depth", seed=seed,
                        params=record_params(steps=steps, from_version=from_version, source=source),
                        negative_prompt=negative_prompt, glb=glb)


def _depth_backend(settings: dict, scene):
    """A JointNet backend that makes depth, or None (then the registered model or the estimator)."""
    from ..backends.jointnet.branch_files import checkpoint_modalities
    from ..backends.jointnet.store import resolve_model
    from ..errors import UserInputError
    from ..registry import get_registry

    model, given = settings.get("model"), settings.get("model") is not None
    if not given:  # the scene's own JointNet model, when it has one
        record = scene.record().get("backend", {})
        if record.get("name") != "jointnet":
            return None
        model = record.get("settings", {}).get("model")
        if model is None:
            return None
    checkpoint, _ = resolve_model(model, settings.get("base"))
    makes = checkpoint_modalities(checkpoint)
    if "depth" not in makes:
        if given:
            raise UserInputError(f"--model {model} makes {', '.join(makes)}, not depth; pass a depth model")
        return None
    chosen = {k: settings.get(k) for k in ("base", "device", "dtype", "scheduler")}
    chosen.update(model=model, modality="depth")
    return get_registry().backend("jointnet").load({k: v for k, v in chosen.items() if v is not None})


class _Recorded:
    """What ``write_result`` records about the backend: the depth model's, else the scene's."""

    def __init__(self, backend, previous: dict, settings: dict):
        self.name = backend.name if backend is not None else previous.get("backend", {}).get("name", "unknown")
        self.modality = previous.get("modality") or "depth"
        self._settings = settings

    def settings(self) -> dict:
        return self._settings
