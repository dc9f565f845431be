"""The server's one use of the generation code: ``worldgen.api.WorldPipeline``, and nothing below it.

A worker holds one pipeline, loaded once at start-up, for the life of the server. The request
carries its own preset (``GenerateRequest.preset``): the server never changes a loaded backend, and
the scene records the preset that ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..api import WorldPipeline
from ..progress import ProgressCallback


def load_pipeline(spec, settings: dict) -> WorldPipeline:
    """One resident pipeline, its backend loaded now (``spec.load``, the call `worldgen pano` makes)."""
    pipe = WorldPipeline(spec, settings)
    pipe.backend  # noqa: B018 - load before the server says it is ready, not on the first job
    return pipe


def make_world(pipe: WorldPipeline, request, scene_dir: Path, glb: Path,
               progress: Optional[ProgressCallback] = None) -> None:
    """Generate ``request``: the scene folder at ``scene_dir`` and its GLB at ``glb`` (both in the job's
    staging folder), exactly as `worldgen pano` writes them (``WorldPipeline.make``)."""
    pipe.make(request, glb, scene_dir, progress)


def backend_settings(pipe: WorldPipeline) -> dict:
    """The loaded backend's settings (what `GET /v1/health` shows)."""
    return pipe.backend.settings()
