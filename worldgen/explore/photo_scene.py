"""Photos to worlds (issue 22), as ``WorldPipeline`` runs them: ``pano --image`` (a new world grown
around a photo) and ``outpaint --photo`` (a canvas chosen by an outpaint request). The photo is
resampled into the cylinder, its depth estimated by channel-wise inpainting, the rest generated
around it and its colours matched at the edge (``worldgen.explore.photo``)."""

from __future__ import annotations

import math
from typing import Optional

from ..errors import UserInputError


def check_photo_backend(backend_name: str, backend) -> None:
    if not all(callable(getattr(backend, task, None)) for task in ("estimate", "edit")) or backend_name == "procedural":
        raise UserInputError("a photo needs a JointNet model (it estimates the photo's depth and inpaints around it); "
                             "pass --model or install one with `worldgen models add`")


def photo_world(backend_name: str, backend, request, photo, hfov: float, progress=None):
    """A World grown around ``photo`` ((H, W, 3) float in [0, 1]) at ``request``'s size, span, prompt and
    sampling; nothing is written."""
    from ..world.generate import request_params
    from ..world.result import World
    from .inpaint import InpaintSettings
    from .photo import world_from_photo

    check_photo_backend(backend_name, backend)
    settings = InpaintSettings(prompt=request.prompt, negative_prompt=request.negative_prompt, steps=request.steps,
                               guidance=request.guidance, seed=request.seed, scheduler=request.scheduler)
    snapshot = world_from_photo(backend, photo, hfov, request.width, request.height, request.span_deg, settings,
                                progress)
    return World(snapshot, operation="pano-image", seed=request.seed, backend=backend_name,
                 backend_settings=backend.settings(), modality=backend.modality,
                 negative_prompt=request.negative_prompt, params=dict(request_params(request), fov=hfov))


def outpaint_photo(backend, photo, hfov: float, request, progress=None):
    """``worldgen outpaint --photo``: the canvas ``request.canvas`` gives for the photo (span, size),
    made tall enough for the photo's footprint unless ``--height`` was given, grown around the photo."""
    from .inpaint import InpaintSettings
    from .photo import world_from_photo

    h, w = photo.shape[:2]
    width, height, x, _, span = request.canvas(w, h, hfov)
    yaw = span * (x + w / 2.0) / width if request.x is not None else None  # --x: the photo's left column
    if request.height is None:  # the photo's rows at its centre column, on this canvas's cylinder
        focal_ratio = (width / math.radians(span)) / (w / 2 / math.tan(math.radians(hfov) / 2))
        height = max(height, int(math.ceil(h * focal_ratio / 8)) * 8)
    settings = InpaintSettings(prompt=request.prompt, negative_prompt=request.negative_prompt, steps=request.steps,
                               guidance=request.guidance, seed=request.seed, scheduler=request.scheduler,
                               method=request.method)
    return world_from_photo(backend, photo, hfov, width, height, span, settings, progress, yaw)


def read_photo_and_fov(photo, fov: Optional[float]):
    """(image (H, W, 3) float in [0, 1], horizontal fov) for a photo file (EXIF orientation and focal
    length read) or an array (``fov`` required)."""
    from pathlib import Path

    from .photo import photo_fov, read_photo

    if isinstance(photo, (str, Path)):
        return read_photo(photo), photo_fov(photo, fov)
    if fov is None:
        raise UserInputError("a photo given as an array needs fov= (its horizontal field of view in degrees)")
    from ..world.inputs import as_image

    return as_image(photo), float(fov)
