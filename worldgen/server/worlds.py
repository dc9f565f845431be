"""The server's one use of the generation code: load a backend, make a world into staging.

Kept in this one small module so the server can move onto ``worldgen.api.WorldPipeline`` by
changing only these two functions. The request carries its own preset
(``GenerateRequest.preset``): the server never changes a loaded backend's attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..progress import ProgressCallback


def load_backend(spec, settings: dict, preset: Optional[str] = None) -> Any:
    """One resident backend instance (``spec.load``, the call `worldgen pano` makes), warmed up for
    the default world (2048x512, ``preset``) before the server takes its first request."""
    from ..world.warmup import RESIDENT, warm_up, with_mode

    instance = spec.load(with_mode(spec, settings, RESIDENT))
    warm_up(instance, preset=preset)
    return instance


def make_world(backend_name: str, instance: Any, request, scene_dir: Path, glb: Path,
               progress: Optional[ProgressCallback] = None) -> None:
    """Generate ``request`` with the loaded ``instance``: the scene folder at ``scene_dir`` and its
    GLB at ``glb`` (both in the job's staging folder)."""
    from ..export_files import export_to_file
    from ..world import generate_world

    generate_world(backend_name, instance, request, scene_dir, request.seed,
                   export=lambda snapshot: export_to_file(snapshot, "glb", glb), progress=progress)
