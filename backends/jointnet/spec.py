"""JointNet's plugin entry: the ``SPEC`` the registry lists, whether a default model is there, and
``load`` (which imports torch and diffusers only when a backend is really wanted).

Kept apart from ``backend.py`` so that the backend and its three-modality subclass (multimodal.py)
never import each other: this module picks one of them.
"""

from __future__ import annotations

from worldgen.specs import BackendSpec

from .settings import SETTINGS, resolve_model


def available() -> bool:
    """True when a default model is registered (so `worldgen pano` can use JointNet unasked)."""
    try:
        resolve_model(None)
    except Exception:  # no default, or its files are gone: not available, whatever the reason
        return False
    return True


def load(settings: dict):
    from worldgen.phases import phase

    settings = dict(settings or {})
    with phase("import torch, diffusers, transformers"):  # seconds of a cold start; shown by --verbose
        import torch  # noqa: F401

        from .light_imports import defer_package_inits

        defer_package_inits()  # not every diffusers model there is, only the ones used (light_imports.py)
        from . import pipeline  # noqa: F401  (diffusers; transformers' CLIP modules load with the weights)
    if settings.get("extra_model"):
        from .multimodal import MultiModalBackend

        return MultiModalBackend.from_settings(settings)
    from .branches_backend import backend_class

    return backend_class(settings).from_settings(settings)


SPEC = BackendSpec(
    name="jointnet",
    description="JointNet (RGB + depth/normal diffusion, SD 2.1-base) with the tiled panorama sampler",
    load=load,
    tasks=("generate", "refine", "outpaint", "estimate", "paint", "edit"),
    available=available,
    settings=SETTINGS,
)
