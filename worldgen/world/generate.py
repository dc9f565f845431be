"""Making one world: generate with a loaded backend, keep it as a new scene, export it.

The API's ``WorldPipeline``, `worldgen pano`, `worldgen batch`, recipes and the server all go
through ``make_world``, so every front end records the same scene for the same request.
"""

from __future__ import annotations

import threading
import time
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


def write_world(world: World, scene_dir: Path, export: Optional[Callable[[], object]] = None,
                concurrent: bool = True):
    """Save ``world`` as a new scene at ``scene_dir`` and run ``export()`` (its GLB), both at once on
    two threads: both only read the world, and PNG/JPEG encoding and numpy release the GIL. The files
    are the same as one after the other (``concurrent`` False; tests/world/test_write_world.py); the
    image is encoded once for both where formats match (``scene.image_files.encode_png``). The export's
    files are written only after the scene is (``export_files.WRITE_AFTER``): never a GLB without its
    scene. Returns the Scene; the first error raised by either is re-raised once both are done."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from ..phases import phase, record_part

    def timed(name: str, job: Callable[[], object]) -> Callable[[], object]:
        def run():
            started = time.perf_counter()
            try:
                return job()
            finally:
                record_part(name, time.perf_counter() - started)
        return run

    from ..export_files import WRITE_AFTER

    saved, scene_ok = threading.Event(), []

    def save():
        try:
            scene = world.save(scene_dir)
            scene_ok.append(True)
            return scene
        finally:
            saved.set()

    def scene_written() -> bool:  # the export's files wait for the scene (export_files.WRITE_AFTER)
        saved.wait()
        return bool(scene_ok)

    jobs = [("write scene", save)] + ([("export", export)] if export else [])
    with phase("write scene + export"):
        if not concurrent or len(jobs) == 1:
            results = [timed(name, job)() for name, job in jobs]
            return results[0]
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="worldgen-write") as pool:
            # Each thread runs in a copy of this context, so it sees the phase timer being recorded into.
            contexts = [contextvars.copy_context() for _ in jobs]
            contexts[1].run(WRITE_AFTER.set, scene_written)
            futures = [pool.submit(context.run, timed(name, job)) for context, (name, job) in zip(contexts, jobs)]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return futures[0].result()


def _regions_record(request: GenerateRequest) -> dict:
    """The request's region prompts as the manifest keeps them (nothing when there are none)."""
    if not request.regions:
        return {}
    from ..geometry.regions import normalize_regions

    return {"regions": [region.to_record() for region in normalize_regions(request.regions)]}
