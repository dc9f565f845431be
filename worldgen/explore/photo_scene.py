"""``worldgen pano --image``: a new scene grown around a photo (see ``photo``), written like any
generated world (``worldgen.world.generate_world``) and exported."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..errors import UserInputError


def photo_world(backend_name: str, backend, request, photo_path: Path, fov: Optional[float], scene_dir: Path,
                seed: Optional[int], export: Callable[[object], None], progress=None):
    """Grow ``request``'s panorama (size, span, prompt, sampling) around the photo; returns the new Scene."""
    from ..explore.inpaint import InpaintSettings
    from ..scene import Scene
    from .photo import photo_fov, read_photo, world_from_photo

    photo = read_photo(photo_path)
    hfov = photo_fov(photo_path, fov)
    if not all(callable(getattr(backend, task, None)) for task in ("estimate", "edit")) or backend_name == "procedural":
        raise UserInputError("--image needs a JointNet model (it estimates the photo's depth and inpaints around it); "
                             "pass --model or install one with `worldgen models add`")
    settings = InpaintSettings(prompt=request.prompt, negative_prompt=request.negative_prompt, steps=request.steps,
                               guidance=request.guidance, seed=request.seed, scheduler=request.scheduler)
    snapshot = world_from_photo(backend, photo, hfov, request.width, request.height, request.span_deg, settings,
                                progress)
    scene = Scene.create(scene_dir, snapshot, operation="pano-image", prompt=request.prompt, seed=seed,
                         backend=backend_name, backend_settings=backend.settings(), modality=backend.modality,
                         negative_prompt=request.negative_prompt,
                         params={"steps": request.steps, "guidance": request.guidance, "span_deg": request.span_deg,
                                 "photo": str(photo_path), "fov": hfov})
    export(snapshot)
    return scene


def outpaint_photo(backend, photo, hfov: float, request, progress=None):
    """``worldgen outpaint --photo``: the canvas ``request.canvas`` gives for the photo (span, size),
    made tall enough for the photo's footprint unless ``--height`` was given, grown around the photo."""
    import math

    from ..explore.inpaint import InpaintSettings
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
