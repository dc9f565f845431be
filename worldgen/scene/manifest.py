"""The scene manifest (``scene.json``): its name and format, the order of a version record's fields,
and the checks that refuse a hand-edited or hostile manifest with one line instead of half-using it.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import SceneError, UserInputError
from ..geometry.projection import CylindricalProjection

MANIFEST_NAME = "scene.json"
FORMAT_NAME = "worldgen-scene"
FORMAT_VERSION = 1
REQUIRED_RECORD_KEYS = ("version", "operation", "prompt", "seed", "backend", "modality", "projection", "layers")


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def json_safe(value: Any) -> Any:
    """Make settings JSON-serialisable (paths, numpy scalars) without hiding what they were."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.generic,)):
        return json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN/inf are not JSON; requests are validated, so only old records carry them
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


RECORD_ORDER = ("version", "operation", "created", "parent", "prompt", "negative_prompt", "seed", "backend",
                 "modality", "projection", "size", "geometry", "layers", "previews", "sphere", "background", "params",
                 "provenance")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def show(value: Any) -> str:
    from ..validation import printable

    text = repr(value)
    return printable(text if len(text) <= 80 else text[:77] + "...")


# What each manifest field must be (a hand-edited or hostile manifest is refused, not half-used).
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "operation": ((str,), "text"),
    "prompt": ((str,), "text"),
    "negative_prompt": ((str,), "text"),
    "created": ((str,), "text"),
    "modality": ((str, type(None)), "text"),
    "backend": ((dict,), "an object"),
    "projection": ((dict,), "an object"),
    "layers": ((dict,), "an object"),
    "previews": ((dict,), "an object"),
    "geometry": ((dict,), "an object"),
    "params": ((dict,), "an object"),
}


def check_record_types(record: dict, where: str) -> None:
    for key, (types, what) in _FIELD_TYPES.items():
        if key in record and not isinstance(record[key], types):
            raise SceneError(f"{where} {key} must be {what}, got {show(record[key])}; restore it from a backup")
    for key in ("seed", "parent"):
        value = record.get(key)
        if value is not None and (not is_int(value) or value < 0):
            raise SceneError(f"{where} {key} must be a whole number of at least 0 (or null), got {show(value)}")
    backend = record["backend"]
    if not isinstance(backend.get("name", ""), str) or not isinstance(backend.get("settings", {}), dict):
        raise SceneError(f"{where} backend must be {{\"name\": text, \"settings\": object}}; restore it from a backup")
    if "image" not in record["layers"]:
        raise SceneError(f"{where} has no image layer; restore it from a backup")
    for name in list(record["layers"]) + list(record.get("previews", {})):
        if not name or "/" in name or "\\" in name:
            raise SceneError(f"{where} has a layer named {show(name)}; layer names are plain words")


def check_size(record: dict, projection: CylindricalProjection, where: str) -> None:
    size = record.get("size")
    if size is None:
        return
    if (not isinstance(size, list) or len(size) != 2 or not all(is_int(v) for v in size)
            or tuple(size) != (projection.width, projection.height)):
        raise SceneError(f"{where} size {show(size)} does not match its projection "
                         f"({projection.width}x{projection.height}); restore it from a backup")


def check_manifest(m: Any, where: Path, resolve: Callable[[Any], Path]) -> None:
    """Refuse, with one line naming the fix, a manifest that is not a scene's or whose versions have
    missing fields, wrong types, paths leaving the scene (``resolve`` raises), a bad projection or size."""
    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        raise SceneError(f"{where} is not a worldgen scene manifest (format is not {FORMAT_NAME!r})")
    version = m.get("format_version")
    if not is_int(version):
        raise SceneError(f"{where} has no integer format_version; restore it from a backup")
    if version > FORMAT_VERSION:
        raise SceneError(f"{where} has format version {version}, newer than this worldgen reads "
                         f"({FORMAT_VERSION}); upgrade worldgen")
    versions = m.get("versions")
    if not isinstance(versions, list) or not versions:
        raise SceneError(f"{where} lists no versions; the scene is empty or damaged")
    for index, record in enumerate(versions, start=1):
        if not isinstance(record, dict):
            raise SceneError(f"{where}: version entry {index} is not an object")
        missing = [k for k in REQUIRED_RECORD_KEYS if k not in record]
        if missing:
            raise SceneError(f"{where}: version {index} lacks {', '.join(missing)}")
        if not is_int(record["version"]) or record["version"] != index:
            raise SceneError(f"{where}: versions are out of order at entry {index}")
        check_record_types(record, f"{where}: version {index}")
        for rel in list(record["layers"].values()) + list(record.get("previews", {}).values()):
            resolve(rel)
        try:
            projection = CylindricalProjection.from_dict(record["projection"])
        except Exception as exc:  # any shape of damage in a hand-edited projection: one line
            raise SceneError(f"{where}: version {index} has a bad projection ({short(exc)})") from None
        check_size(record, projection, f"{where}: version {index}")
        try:
            from ..geometry.world import GeometrySettings

            GeometrySettings.from_dict(record.get("geometry", {}))
        except UserInputError as exc:
            raise SceneError(f"{where}: version {index}: {short(exc)}") from None
