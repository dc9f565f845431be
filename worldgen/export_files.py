"""Write a scene export to disk: the one place exporters' bytes meet the file system.

Exporters are pure (``snapshot, options -> bytes``, see ``worldgen.specs.ExporterSpec``); this
looks one up in the plugin registry, runs it and writes the result atomically, so a reader never
sees half a file and a failed export leaves any earlier file in place.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Optional

from .scene.atomic import atomic_write_bytes
from .errors import UserInputError
from .validation import check_option_values
from .output_paths import check_output_path
from .progress import ProgressCallback, report


def exporter_for(fmt: str):
    from .registry import get_registry

    return get_registry().exporter(fmt)


def default_export_path(scene_path: str | Path, fmt: str) -> Path:
    """Where an export goes when no path is given: next to the scene folder, named after it
    (``fjord/`` -> ``fjord.glb``; formats sharing an extension add their name: ``fjord.splat.ply``)."""
    scene_path = Path(scene_path)
    ext = exporter_for(fmt).extension
    name = scene_path.resolve().name or "world"
    suffix = ext if ext[1:] == fmt else f".{fmt}{ext}"
    return scene_path.resolve().parent / f"{name}{suffix}"


def export_bytes(snapshot, fmt: str, options: Optional[dict] = None) -> bytes:
    check_option_values(dict(options or {}))
    data = exporter_for(fmt).export(snapshot, dict(options or {}))
    if not isinstance(data, (bytes, bytearray)):
        from .errors import PluginError

        raise PluginError(f"exporter {fmt!r} returned {type(data).__name__}, not bytes; fix or remove the plugin")
    return bytes(data) if isinstance(data, bytearray) else data


# Set by ``world.generate.write_world`` while a scene and its GLB are written at once: the export's bytes
# are made beside the scene, but its files are written only once the scene is (the callable waits for
# it and says whether it was), so an interrupt or a failed scene never leaves a GLB without its scene.
WRITE_AFTER: ContextVar[Optional[Callable[[], bool]]] = ContextVar("worldgen_write_after", default=None)


def export_to_file(snapshot, fmt: str, path: str | Path, options: Optional[dict] = None,
                   progress: Optional[ProgressCallback] = None, *, confine_to: Optional[Path] = None,
                   managed: Optional[Path] = None) -> Path:
    """Export ``snapshot`` with the exporter named ``fmt`` and write it to ``path`` atomically.

    ``options`` are the exporter's own (e.g. ``{"step": 2}`` for glb). ``path`` passes
    ``output_paths.check_output_path`` first (never a device/FIFO/folder, never inside a scene
    folder except ``managed``, inside ``confine_to`` when given). Returns the path written."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"{path} is a folder; give a file name such as {path / ('world' + exporter_for(fmt).extension)}")
    check_output_path(path, what="export", confine_to=confine_to, managed=managed)
    report(progress, "export", 0, 2, fmt)
    spec = exporter_for(fmt)
    if spec.files is not None:  # a format of several files: the main one plus companions beside it
        from .export_sets import export_set

        data, companions = export_set(spec, snapshot, options, path)
    else:
        data, companions = export_bytes(snapshot, fmt, options), {}
    report(progress, "export", 1, 2, f"{len(data) / 1e6:.1f} MB")
    for companion in companions:
        check_output_path(companion, what="export", confine_to=confine_to, managed=managed)
    gate = WRITE_AFTER.get()
    if gate is not None and not gate():
        raise RuntimeError(f"the scene was not written, so {path} is not written either")
    check_output_path(path, what="export", confine_to=confine_to, managed=managed)  # it may have changed meanwhile
    for companion, companion_data in companions.items():
        atomic_write_bytes(companion, companion_data)
    atomic_write_bytes(path, data)
    report(progress, "export", 2, 2, str(path))
    return path
