"""Which backend completes a scene (issue 22): the scene's own backend when it renders the full sphere
or its background layers itself (procedural worlds know their truth), else JointNet through the
generic inpainting path (``worldgen.explore.sphere`` / ``background``)."""

from __future__ import annotations


def explore_loader(settings: dict, scene, task: str):
    """A loader for the backend that runs ``task`` ("sphere" or "layers") on ``scene``."""
    from ..registry import get_registry
    from ..world.backends import load_task_backend
    from .inpaint import offers

    def load():
        record = scene.record().get("backend", {}) if scene is not None else {}
        name = record.get("name")
        if settings.get("model") is None and name and name != "jointnet":
            try:
                spec = get_registry().backend(name)
            except Exception:  # an unknown or uninstalled backend: the generic path still works
                spec = None
            if spec is not None and task in spec.tasks:
                backend = spec.load(dict(record.get("settings", {})))
                if offers(backend, task):
                    return backend
        return load_task_backend(settings, scene)

    return load
