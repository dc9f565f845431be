"""Making one world: generate with a loaded backend, keep it as a new scene, export it.

The API's ``WorldPipeline``, `worldgen pano`, `worldgen batch`, recipes and the server all go
through ``make_world``, so every front end records the same scene for the same request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..backend import GenerateRequest
from ..progress import ProgressCallback
from .result import World


def make_world(backend_name: str, backend, request: GenerateRequest,
               progress: Optional[ProgressCallback] = None) -> World:
    """Generate ``request`` with ``backend`` (already loaded); nothing is written."""
    snapshot = backend.generate(request, progress)
    return World(snapshot, operation="pano", seed=request.seed, backend=backend_name,
                 backend_settings=_settings_that_ran(backend, request), modality=request.modality,
                 negative_prompt=request.negative_prompt, params=request_params(request))


def _settings_that_ran(backend, request) -> dict:
    """The backend's settings with the request's own choices (its preset) in place of the loaded ones."""
    recorded = getattr(backend, "settings_for", None)  # a plugin that is no worldgen.backend.Backend has only settings()
    return recorded(request) if recorded is not None else backend.settings()


def request_params(request: GenerateRequest) -> dict:
    """What the manifest keeps about a generation: sampling, span, preset when named, regions."""
    params = {"steps": request.steps, "guidance": request.guidance, "scheduler": request.scheduler,
              "span_deg": request.span_deg}
    if getattr(request, "preset", None):
        params["preset"] = request.preset
    return {**params, **_regions_record(request)}


def generate_world(backend_name: str, backend, request: GenerateRequest, scene_dir: Path, seed: Optional[int],
                   export: Callable[[object], None], progress: Optional[ProgressCallback] = None):
    """Generate ``request``, write the scene at ``scene_dir``, then call ``export(snapshot)``. Returns the Scene."""
    from ..phases import phase

    world = make_world(backend_name, backend, request, progress)
    world.seed = seed
    with phase("write scene"):
        scene = world.save(scene_dir)
    with phase("export"):
        export(world.snapshot)
    return scene


def _regions_record(request: GenerateRequest) -> dict:
    """The request's region prompts as the manifest keeps them (nothing when there are none)."""
    if not request.regions:
        return {}
    from ..geometry.regions import normalize_regions

    return {"regions": [region.to_record() for region in normalize_regions(request.regions)]}
