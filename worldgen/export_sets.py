"""Formats made of several files (``ExporterSpec.files``): where the companions of a main file go."""

from __future__ import annotations

from pathlib import Path

from .errors import PluginError


def companion_path(main: Path, suffix: str) -> Path:
    """``world.png`` + ``.distance.exr`` -> ``world.distance.exr`` (the main file's extension replaced)."""
    return main.with_suffix("").with_name(main.with_suffix("").name + suffix)


def export_set(spec, snapshot, options: dict, main: Path) -> tuple[bytes, dict[Path, bytes]]:
    """(main file bytes, {companion path: bytes}) of a multi-file exporter."""
    from .validation import check_option_values

    check_option_values(dict(options or {}))
    files = spec.files(snapshot, dict(options or {}))
    if not isinstance(files, dict) or not isinstance(files.get(""), (bytes, bytearray)):
        raise PluginError(f"exporter {spec.name!r} returned no main file from files(); fix or remove the plugin")
    companions = {}
    for suffix, data in files.items():
        if not suffix:
            continue
        if not isinstance(suffix, str) or not suffix.startswith(".") or "/" in suffix or "\\" in suffix:
            raise PluginError(f"exporter {spec.name!r} named a companion file {suffix!r}; suffixes look like '.px.png'")
        companions[companion_path(main, suffix)] = bytes(data)
    return bytes(files[""]), companions
