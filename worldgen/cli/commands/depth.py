"""`worldgen depth SCENE`: add a depth layer to an existing scene, as a new version.

Not a command module (no ``commands``): `worldgen depth` (convert.py) hands a scene folder here. The
depth comes from channel-wise inpainting with a depth model (``--model``; else the scene's own model
when it has a depth branch; else the registered default; else the depth plugin's estimator, see
``backends/jointnet/depth_layer.py``). The RGB and every other layer of the version are kept as
they are; the version the command started from is never changed.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace


def depth_for_scene(scene_dir: Path, kw: dict, from_version=None) -> None:
    from ...backends.jointnet.depth_layer import add_depth
    from ...scene import Scene
    from ..options import note
    from ._taskcli import progress_of, record_params, write_result

    scene = Scene.open(scene_dir)
    snapshot = scene.load(from_version)
    backend = _depth_backend(kw, scene)
    result = add_depth(snapshot, backend, kw["steps"], kw["seed"], progress_of(kw["quiet"]))
    request = SimpleNamespace(negative_prompt=kw["negative_prompt"])  # all write_result reads of a request
    previous = scene.record(from_version) if from_version else scene.record()
    settings = backend.settings() if backend is not None else previous.get("backend", {}).get("settings", {})
    scene_after, version = write_result(scene.path, scene, result, _Recorded(backend, previous, settings),
                                        "depth", request, kw["seed"],
                                        record_params(steps=kw["steps"], from_version=from_version,
                                                      source="model" if backend is not None else "registered model or estimator"),
                                        glb=kw["glb"])
    note(f"added a depth layer: {scene_after.path}/ version {version}", kw["quiet"])


def _depth_backend(kw: dict, scene):
    """A JointNet backend that makes depth, or None (then the registered model or the estimator)."""
    from ...backends.jointnet.branch_files import checkpoint_modalities
    from ...backends.jointnet.store import resolve_model
    from ...errors import UserInputError
    from ...registry import get_registry

    model = kw.get("model")
    if model is not None:
        checkpoint, _ = resolve_model(model, kw.get("base"))
        if "depth" not in checkpoint_modalities(checkpoint):
            raise UserInputError(f"--model {model} makes {', '.join(checkpoint_modalities(checkpoint))}, not depth; "
                                 f"pass a depth model")
    else:
        record = scene.record().get("backend", {})
        if record.get("name") != "jointnet":
            return None
        model = record.get("settings", {}).get("model")
    if model is None:
        return None
    checkpoint, _ = resolve_model(model, kw.get("base"))
    if "depth" not in checkpoint_modalities(checkpoint):
        return None
    settings = {"model": model, "base": kw.get("base"), "device": kw.get("device"), "dtype": kw.get("dtype"),
                "scheduler": kw.get("scheduler"), "modality": "depth"}
    return get_registry().backend("jointnet").load({k: v for k, v in settings.items() if v is not None})


class _Recorded:
    """What ``write_result`` records about the backend: the depth model's, else the scene's."""

    def __init__(self, backend, previous: dict, settings: dict):
        self.name = backend.name if backend is not None else previous.get("backend", {}).get("name", "unknown")
        self.modality = previous.get("modality") or "depth"
        self._settings = settings

    def settings(self) -> dict:
        return self._settings
