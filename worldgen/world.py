"""Making one world: generate with a loaded backend, keep it as a new scene, export its GLB.

`worldgen pano` and `worldgen batch` both call this, so a batch job and a single command produce
the same scene for the same request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from .backend import GenerateRequest
from .progress import ProgressCallback
from .scene.store import Scene


def generate_world(backend_name: str, backend, request: GenerateRequest, scene_dir: Path, seed: Optional[int],
                   export: Callable[[object], None], progress: Optional[ProgressCallback] = None) -> Scene:
    """Generate ``request`` with ``backend`` (already loaded), write the scene, then call ``export(snapshot)``."""
    from .phases import phase

    snapshot = backend.generate(request, progress)
    with phase("write scene"):
        scene = Scene.create(scene_dir, snapshot, operation="pano", prompt=request.prompt, seed=seed,
                             backend=backend_name, backend_settings=backend.settings(), modality=request.modality,
                             negative_prompt=request.negative_prompt,
                             params={"steps": request.steps, "guidance": request.guidance,
                                     "scheduler": request.scheduler, "span_deg": request.span_deg,
                                     **_regions_record(request)})
    with phase("export"):
        export(snapshot)
    return scene


def _regions_record(request: GenerateRequest) -> dict:
    """The request's region prompts as the manifest keeps them (nothing when there are none)."""
    if not request.regions:
        return {}
    from .geometry.regions import normalize_regions

    return {"regions": [region.to_record() for region in normalize_regions(request.regions)]}
