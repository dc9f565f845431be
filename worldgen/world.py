"""Making one world: generate with a loaded backend, keep it as a new scene, export its GLB.

`worldgen pano` and `worldgen batch` both call this, so a batch job and a single command produce
the same scene for the same request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from .backend import GenerateRequest
from .progress import ProgressCallback
from .scene import Scene


def generate_world(backend_name: str, backend, request: GenerateRequest, scene_dir: Path, seed: Optional[int],
                   export: Callable[[object], None], progress: Optional[ProgressCallback] = None) -> Scene:
    """Generate ``request`` with ``backend`` (already loaded), write the scene, then call ``export(snapshot)``."""
    snapshot = backend.generate(request, progress)
    scene = Scene.create(scene_dir, snapshot, operation="pano", prompt=request.prompt, seed=seed,
                         backend=backend_name, backend_settings=backend.settings(), modality=request.modality,
                         negative_prompt=request.negative_prompt,
                         params={"steps": request.steps, "guidance": request.guidance,
                                 "scheduler": request.scheduler, "span_deg": request.span_deg})
    export(snapshot)
    return scene
