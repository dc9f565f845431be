"""A depth layer for a world that has none (issue 23): 3D needs depth or normals.

A world made with, say, an edges-only model has no layer to build geometry from. Its depth comes,
in this order, from:
1. a depth branch of the same model (``BranchesBackend`` runs it by channel-wise inpainting: RGB
   kept, depth generated), see ``BranchesBackend.estimate_depth``;
2. the registered JointNet model, if it makes depth (channel-wise inpainting, the same way);
3. the depth plugin's estimator (a monocular depth network; needs its weights installed).
The RGB and every other layer are kept exactly; only the depth layer is added.
"""

from __future__ import annotations

from typing import Optional

from worldgen.errors import ModelError, UserInputError

GEOMETRY_ROLES = ("distance", "disparity", "normals")


def has_geometry(snapshot) -> bool:
    """True when a layer of the snapshot can be turned into 3D."""
    from worldgen.registry import get_registry

    registry = get_registry()
    for name in snapshot.modalities:
        try:
            if registry.modality(name).geometry in GEOMETRY_ROLES:
                return True
        except Exception:  # a layer whose plugin is not installed cannot give geometry
            continue
    return False


def with_layers(snapshot, layers: dict):
    """``snapshot`` with ``layers`` added (the image and other layers are the same arrays)."""
    from worldgen.scene.snapshot import Snapshot

    return Snapshot(image=snapshot.image, modalities={**snapshot.modalities, **layers},
                    projection=snapshot.projection, geometry=snapshot.geometry, prompt=snapshot.prompt)


def estimate_request(snapshot, steps: int, seed: int, scheduler: Optional[str] = None):
    """Channel-wise inpainting of the snapshot's image: RGB known, the modality generated."""
    from worldgen.sampler.requests import EstimateRequest

    return EstimateRequest(prompt=snapshot.prompt or "", steps=steps, guidance=1.0, seed=seed,
                           scheduler=scheduler, image=snapshot.image, span_deg=snapshot.projection.span_deg,
                           modality="depth")


def add_depth(snapshot, backend=None, steps: int = 50, seed: int = 0, progress=None):
    """``snapshot`` with a depth layer, from the first source above that there is."""
    if backend is not None and tuple(getattr(backend, "modalities", (backend.modality,))) == ("depth",):
        depth_model = backend  # it makes depth alone: use it as it is
    elif backend is not None and "depth" in getattr(backend, "available", ()):
        return backend.estimate_depth(snapshot, steps, seed, progress)
    else:
        depth_model = _registered_depth_backend(backend)
    if depth_model is not None:
        result = depth_model.estimate(estimate_request(snapshot, steps, seed), progress)
        return with_layers(snapshot, {"depth": result.modalities["depth"]})
    return with_layers(snapshot, {"depth": _plugin_estimate(snapshot.image)})


def _registered_depth_backend(current):
    """A backend for the registered default JointNet model when it makes depth, else None."""
    from .backend import JointNetBackend
    from .store import checkpoint_modality
    from .store import default_model

    entry = default_model()
    if entry is None or checkpoint_modality(entry.checkpoint_dir) != "depth":
        return None
    settings = {"model": entry.name}
    if current is not None:  # the same device and dtype as the world's own model
        settings.update(device=str(current.device), dtype=str(current.dtype).replace("torch.", ""))
    return JointNetBackend.from_settings(settings)


def _plugin_estimate(image):
    from worldgen.registry import get_registry

    spec = get_registry().modality("depth")
    if spec.estimator is None:
        raise ModelError("this world has no depth or normal layer and nothing can estimate one; register a "
                         "depth model (`worldgen models add ... --default`) or pass --modality depth")
    try:
        return spec.estimator(image)
    except (ModelError, UserInputError) as exc:  # e.g. no estimator weights named or installed
        raise ModelError(f"this world has no depth or normal layer and the depth estimator cannot run ({exc}); "
                         f"pass --model with a depth model or register one (`worldgen models add ... --default`)") from None
