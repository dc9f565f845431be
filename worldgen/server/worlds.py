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


def load_pipeline(spec, settings: dict, preset: Optional[str] = None) -> WorldPipeline:
    """One resident pipeline, its backend loaded now (``spec.load``, the call `worldgen pano` makes) and
    warmed up for the default world (2048x512, ``preset``) before the server takes its first request."""
    from ..world.warmup import RESIDENT, warm_up, with_mode

    pipe = WorldPipeline(spec, with_mode(spec, settings, RESIDENT))
    warm_up(pipe.backend, preset=preset)
    return pipe


def make_world(pipe: WorldPipeline, request, scene_dir: Path, glb: Path,
               progress: Optional[ProgressCallback] = None) -> None:
    """Generate ``request``: the scene folder at ``scene_dir`` and its GLB at ``glb`` (both in the job's
    staging folder), exactly as `worldgen pano` writes them (``WorldPipeline.make``)."""
    pipe.make(request, glb, scene_dir, progress)


def backend_settings(pipe: WorldPipeline) -> dict:
    """The loaded backend's settings (what `GET /v1/health` shows)."""
    return pipe.backend.settings()
