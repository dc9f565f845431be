"""What the built-in exporters share: option parsing, geometry overrides, and binary PLY bytes."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from worldgen.errors import UserInputError

# Every exporter accepts these and passes them to ``worldgen.geometry.world.build_world`` as overrides
# of the scene's stored geometry (see ``worldgen.geometry.world.GeometrySettings``).
GEOMETRY_OPTIONS: dict[str, Any] = {
    "near": None,
    "far": None,
    "eye_height": None,
    "disparity_scale": None,
    "disparity_shift": None,
    "sky_disparity": None,
    "fit_ground": None,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any, default: Any, exporter: str) -> Any:
    """Convert a CLI string (or a Python value) to the type of the option's default."""
    if value is None:
        return None
    kind = type(default) if default is not None else (bool if name == "fit_ground" else float)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in _TRUE:
                    return True
                if value.lower() in _FALSE:
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        wanted = {bool: "true or false", int: "a whole number", float: "a number"}.get(kind, "text")
        raise UserInputError(f"{exporter} option {name}={value!r} must be {wanted}") from None


def read_options(options: Optional[dict], defaults: dict, exporter: str) -> dict:
    """Defaults updated by ``options``; unknown names and wrong types raise ``UserInputError``."""
    allowed = {**GEOMETRY_OPTIONS, **defaults}
    unknown = sorted(set(options or {}) - set(allowed))
    if unknown:
        raise UserInputError(f"unknown {exporter} option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(allowed))}")
    merged = dict(allowed)
    for name, value in (options or {}).items():
        merged[name] = _coerce(name, value, allowed[name], exporter)
    return merged


def choice(opts: dict, name: str, allowed: tuple[str, ...], exporter: str) -> str:
    value = str(opts[name]).lower()
    if value not in allowed:
        raise UserInputError(f"{exporter} option {name}={opts[name]!r} must be one of {', '.join(allowed)}")
    return value


def geometry_overrides(opts: dict) -> dict:
    return {name: opts[name] for name in GEOMETRY_OPTIONS if opts.get(name) is not None}


def option_names(defaults: dict) -> tuple[str, ...]:
    return tuple(defaults) + tuple(GEOMETRY_OPTIONS)


def world_for(snapshot, opts: dict, step_key: str = "step"):
    """``build_world`` with the exporter's step and geometry overrides."""
    from worldgen.geometry.world import build_world

    return build_world(snapshot, step=opts[step_key], overrides=geometry_overrides(opts))


# Binary PLY -------------------------------------------------------------------------------------

_PLY_TYPES = {np.dtype("float32"): "float", np.dtype("uint8"): "uchar", np.dtype("int32"): "int",
              np.dtype("uint32"): "uint", np.dtype("float64"): "double", np.dtype("int16"): "short",
              np.dtype("uint16"): "ushort"}


def encode_ply_vertices(columns: list[tuple[str, np.ndarray]], comments: tuple[str, ...] = ()) -> bytes:
    """A binary little-endian PLY with one ``vertex`` element whose properties are ``columns``.

    Each column is (property name, 1-D array); dtypes map to PLY types (float32 -> float, uint8 ->
    uchar, ...). open3d only writes PLY to a path and has no splat layout, so the bytes are made
    here: a text header and one packed record per vertex."""
    if not columns:
        raise ValueError("a PLY needs at least one property")
    count = len(columns[0][1])
    dtype = []
    for name, values in columns:
        values = np.asarray(values)
        if values.ndim != 1 or len(values) != count:
            raise ValueError(f"PLY property {name} has shape {values.shape}, expected ({count},)")
        if values.dtype.newbyteorder("<") not in {t.newbyteorder("<") for t in _PLY_TYPES}:
            raise ValueError(f"PLY property {name} has unsupported dtype {values.dtype}")
        dtype.append((name, values.dtype.newbyteorder("<")))
    records = np.empty(count, dtype=dtype)
    for name, values in columns:
        records[name] = values
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header.append(f"element vertex {count}")
    header += [f"property {_PLY_TYPES[np.dtype(t).newbyteorder('=')]} {n}" for n, t in dtype]
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii") + records.tobytes()
