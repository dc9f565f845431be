"""Which backend does the work: the one place these choices are made.

``choose_backend`` resolves ``auto`` for new worlds (`pano`, `batch`, `build`, the server, the API);
``load_task_backend`` picks the model a scene task (refine, outpaint, edit, paint, depth) loads;
``choose_painter`` picks who paints a placed object.
"""

from __future__ import annotations

from typing import Callable, Optional

REAL_WEIGHTS_HINT = ("no JointNet weights are installed, so this world comes from the offline procedural backend "
                     "(not diffusion). For real generation: worldgen models add rgbd_finetune_sd21b.zip --name rgbd "
                     "--base PATH/TO/stable-diffusion-2-1-base --default")
RECIPE_FALLBACK_HINT = ("no JointNet weights are installed, so this recipe runs on the offline procedural backend "
                        "(not diffusion); pass --model or register one with `worldgen models add`")
PLACEHOLDER_HINT = ("no JointNet model for this scene, so the object is a plain placeholder shape at the right depth; "
                    "pass --model to paint it with diffusion")

# What a task's model options may name (everything else a caller passes is not a load setting).
TASK_SETTINGS = ("model", "base", "device", "dtype", "scheduler", "window_batch", "extra_model", "speed", "memory")


def jointnet_installed() -> bool:
    """Whether a JointNet model is registered and its weights are present (False without the plugin)."""
    from ..registry import get_registry

    try:
        jointnet = get_registry().backend("jointnet")
        return bool(jointnet.available is not None and jointnet.available())
    except Exception:  # no jointnet plugin, or its weights check failed: not installed, and said so by callers
        return False


def choose_backend(name: Optional[str], model: Optional[str] = None):
    """(backend spec, fell_back) for a backend name; ``auto`` (or None) is JointNet when a model is
    given or installed, else procedural, with ``fell_back`` True so the caller can say why."""
    from ..registry import get_registry

    registry = get_registry()
    if name not in (None, "auto"):
        return registry.backend(name), False
    if model or jointnet_installed():
        return registry.backend("jointnet"), False
    return registry.backend("procedural"), True


def load_settings(spec, settings: dict, note: Callable[[str], None] = lambda text: None) -> dict:
    """``settings`` without unset values, and without keys the backend does not take (named in a note)."""
    settings = {k: v for k, v in settings.items() if v is not None}
    known = tuple(spec.settings or ())
    dropped = sorted(k for k in settings if k not in known)
    if dropped and known:
        note(f"the {spec.name} backend ignores {', '.join(dropped)}")
    elif dropped:
        note(f"the {spec.name} backend takes no settings; ignoring {', '.join(dropped)}")
    return {k: v for k, v in settings.items() if k in known}


def scene_model_settings(settings: dict, scene=None) -> dict:
    """A task's JointNet load settings: without a model, a scene made by JointNet is worked on with the
    model, base and extra model recorded in its manifest (so a refine matches the world it refines)."""
    settings = {k: v for k, v in settings.items() if k in TASK_SETTINGS and v is not None}
    if settings.get("model") is None and scene is not None:
        record = scene.record().get("backend", {})
        if record.get("name") == "jointnet":
            recorded = record.get("settings", {})
            # the modality selection: the branches a several-modality model ran (issue 23)
            for key in ("model", "base", "extra_model", "modality"):
                if recorded.get(key) is not None and key not in settings:
                    settings[key] = recorded[key]
    return settings


def load_task_backend(settings: dict, scene=None):
    """The JointNet backend a scene task runs on (see ``scene_model_settings``)."""
    from ..registry import get_registry

    return get_registry().backend("jointnet").load(scene_model_settings(settings, scene))


def painter_is_model(name: str, model: Optional[str], scene) -> bool:
    """Whether a placed object is painted by diffusion (True) or as a placeholder shape (False).
    auto: JointNet when a model is given, the scene was made by JointNet, or a default is registered."""
    if name == "procedural":
        return False
    if name == "auto" and not model:
        made_by_jointnet = scene is not None and scene.record().get("backend", {}).get("name") == "jointnet"
        return made_by_jointnet or jointnet_installed()
    return True
