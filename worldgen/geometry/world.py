"""From a panorama's depth (or normal) layer to 3D points in metres.

Conventions (shared by every exporter and the viewer):

- Cylindrical projection (``worldgen.geometry.projection``): column ``u`` looks along azimuth
  ``theta = span_rad * (u + 0.5) / W``, world direction ``(sin theta, 0, -cos theta)``, so the first
  column looks down -z (glTF's forward) and azimuth grows to the right. y is up; units are metres;
  the camera sits at the origin.
- "Distance" is the HORIZONTAL distance ``r`` from the cylinder axis. Row ``v`` is at height
  ``y = r * (H/2 - (v + 0.5)) / focal_px`` above the camera, so the point of pixel (v, u) is
  ``r * (sin theta, slope_v, -cos theta)``.
- The ``depth`` layer is relative disparity in [0, 1] (near = 1). With the numbers in
  ``Snapshot.geometry`` (see ``GeometrySettings``)::

      raw      = 1 / (disparity * disparity_scale + disparity_shift)
      distance = clip(world_scale * raw, near, far)
      sky      = disparity <= sky_disparity  or  world_scale * raw >= far  (or raw not finite/positive)

  Sky pixels are not surfaces: exporters put them on a separate distant cylinder of radius ``far``.
- ``world_scale`` is 1 unless ``fit_ground`` is set (the default for relative depth, e.g. JointNet
  output, which has no scale): then the ground is looked for (a horizontal surface below the
  camera) and the world is scaled so that the camera stands ``eye_height`` metres above it.
  Backends that know metric depth store ``disparity_scale``/``disparity_shift`` and leave
  ``fit_ground`` unset (false).

The normal layer (unit vectors in each column's camera frame: x right, y up, z toward the viewer) is
turned into world normals for shading; a scene with normals but no depth gets its distance from
``worldgen.geometry.normals_integration``.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

import numpy as np

from ..errors import SceneError, UserInputError
from .normals import camera_to_world_normals, distance_normals, unit_rays
from .projection import CylindricalProjection
from .rays import points_from_distance

# Relative disparity (JointNet, MiDaS style) carries no scale. These defaults give a plausible shape
# (nearest pixel ~1 m, disparity 0.004 ~70 m) before the ground fit sets the scale.
_RELATIVE_DEFAULTS = {
    "disparity_scale": 1.0,
    "disparity_shift": 0.01,
    "near": 0.1,
    "far": 200.0,
    "eye_height": 1.6,
    "sky_disparity": 0.004,
    "fit_ground": True,
}
# Missing keys of a geometry that states its own scale/shift (a metric backend): take it as metric.
_METRIC_DEFAULTS = dict(_RELATIVE_DEFAULTS, sky_disparity=1e-6, fit_ground=False)

# A ground fit outside this range means the "ground" was something else (a table, a ceiling).
_GROUND_SCALE_RANGE = (0.05, 20.0)
# A normals-only scene with no ground in view still needs a size: its median distance, in metres.
_NORMALS_ONLY_MEDIAN_DISTANCE = 3.0


def default_geometry() -> dict:
    """The geometry a backend with relative disparity (JointNet) should store in its snapshots."""
    return dict(_RELATIVE_DEFAULTS)


@dataclass(frozen=True)
class GeometrySettings:
    """The numbers that turn a disparity layer into metres (see the module docstring)."""

    disparity_scale: float
    disparity_shift: float
    near: float
    far: float
    eye_height: float
    sky_disparity: float
    fit_ground: bool

    @classmethod
    def from_dict(cls, geometry: Optional[dict]) -> "GeometrySettings":
        """Settings from ``Snapshot.geometry``; missing keys get defaults (relative-depth defaults
        when the dict gives no ``disparity_scale``, metric ones when it does). Unknown keys are kept
        out, bad values raise ``UserInputError``."""
        geometry = dict(geometry or {})
        base = _METRIC_DEFAULTS if "disparity_scale" in geometry else _RELATIVE_DEFAULTS
        values = {}
        for f in fields(cls):
            raw = geometry.get(f.name, base[f.name])
            try:
                values[f.name] = bool(raw) if f.name == "fit_ground" else float(raw)
            except (TypeError, ValueError):
                raise UserInputError(f"geometry {f.name}={raw!r} is not a number; fix it in the scene's geometry") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not all(math.isfinite(getattr(self, f.name)) for f in fields(self) if f.name != "fit_ground"):
            raise UserInputError("geometry values must be finite numbers; fix the scene's geometry")
        if not 0 < self.near < self.far:
            raise UserInputError(f"geometry needs 0 < near < far, got near={self.near}, far={self.far}")
        if self.disparity_scale <= 0 or self.disparity_shift < 0:
            raise UserInputError("geometry needs disparity_scale > 0 and disparity_shift >= 0 "
                                 f"(got {self.disparity_scale}, {self.disparity_shift})")
        if self.eye_height <= 0:
            raise UserInputError(f"eye_height must be positive metres, got {self.eye_height}")

    def with_overrides(self, **overrides) -> "GeometrySettings":
        """A copy with some values replaced (None values are ignored), checked again."""
        data = asdict(self)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return GeometrySettings.from_dict(data)

    def to_dict(self) -> dict:
        return asdict(self)


# Disparity <-> distance ---------------------------------------------------------------------------

def raw_distance(disparity: np.ndarray, settings: GeometrySettings) -> np.ndarray:
    """1 / (disparity * scale + shift), float32; inf where the denominator is not positive."""
    d = np.asarray(disparity, dtype=np.float32)
    denom = d * np.float32(settings.disparity_scale) + np.float32(settings.disparity_shift)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, np.float32(1.0) / denom, np.float32(np.inf))
    return out.astype(np.float32, copy=False)


def sky_mask(disparity: np.ndarray, settings: GeometrySettings, world_scale: float = 1.0) -> np.ndarray:
    """True where a pixel is sky: disparity at or below ``sky_disparity``, or at/after ``far``."""
    d = np.asarray(disparity, dtype=np.float32)
    far_raw = settings.far / world_scale
    raw = raw_distance(d, settings)
    return ~np.isfinite(d) | (d <= settings.sky_disparity) | ~(raw < far_raw)


def disparity_to_distance(disparity: np.ndarray, settings: GeometrySettings, world_scale: float = 1.0) -> np.ndarray:
    """Metric horizontal distance, clipped to [near, far]; sky pixels come out at ``far``."""
    raw = raw_distance(disparity, settings)
    out = np.clip(raw * np.float32(world_scale), settings.near, settings.far)
    out[~np.isfinite(out)] = settings.far
    return out.astype(np.float32, copy=False)


def distance_to_disparity(distance: np.ndarray, settings: GeometrySettings, world_scale: float = 1.0) -> np.ndarray:
    """Inverse of ``disparity_to_distance`` inside [near, far] (results may leave [0, 1])."""
    r = np.asarray(distance, dtype=np.float64) / world_scale
    return ((1.0 / r - settings.disparity_shift) / settings.disparity_scale).astype(np.float32)


# 16-bit depth images --------------------------------------------------------------------------------

def read_depth_png(source, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """A depth PNG (path or bytes) as (H, W) float32 in ``value_range`` at its full bit depth.

    16-bit greyscale is read as 16-bit (the public pano-to-mesh script converted it to 8 bits and
    saturated nearly every pixel); 8-bit files are scaled from 255; RGB files use their red channel."""
    from ..scene.image_files import open_image

    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    name = "depth image" if handle is not source else f"depth image {source}"
    with open_image(handle, name, "give a 16-bit greyscale PNG") as img:
        mode = img.mode
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    if mode in ("I;16", "I;16B", "I;16L", "I") or arr.dtype in (np.uint16, np.int32):
        full = 65535.0
    elif arr.dtype == np.uint8:
        full = 255.0
    else:
        raise UserInputError(f"depth image mode {mode} is not supported; give a 16-bit greyscale PNG")
    lo, hi = value_range
    return (arr.astype(np.float64) / full * (hi - lo) + lo).astype(np.float32)


# Normals ---------------------------------------------------------------------------------------------
# Ground --------------------------------------------------------------------------------------------

def detect_ground(points: np.ndarray, valid: np.ndarray, min_fraction: float = 0.05) -> Optional[float]:
    """Height (positive, in the points' units) of a horizontal ground below the camera, or None.

    A pixel lies on a horizontal surface when its height equals the height of the pixel below it
    (a wall's height changes from row to row, a floor's does not). Among such pixels in the lower
    half of the image, below the camera, the lowest well-supported height is the ground; it must
    cover ``min_fraction`` of the lower half."""
    p = np.asarray(points)
    h = p.shape[0]
    if h < 4:
        return None
    top = h // 2
    y = p[top:-1, :, 1].astype(np.float64)
    y_next = p[top + 1:, :, 1].astype(np.float64)
    ok = valid[top:-1] & valid[top + 1:] & (y < 0)
    flat = ok & (np.abs(y - y_next) <= 0.02 * np.abs(y))
    count = int(flat.sum())
    if count < min_fraction * y.size or count < 16:
        return None
    heights = -y[flat]
    # The ground is the lowest large horizontal surface: search log-height bins from the bottom.
    logs = np.log(heights)
    hist, edges = np.histogram(logs, bins=64)
    need = max(16, int(min_fraction * y.size * 0.5))
    for i in range(len(hist) - 1, -1, -1):  # highest |y| (lowest surface) first; 64 bins, not pixels
        window = hist[max(0, i - 1): i + 2].sum()
        if window >= need:
            lo, hi = edges[max(0, i - 1)], edges[min(len(hist), i + 2)]
            sel = heights[(logs >= lo) & (logs <= hi)]
            return float(np.median(sel))
    return None


# The whole world -----------------------------------------------------------------------------------

@dataclass
class WorldGeometry:
    """Everything exporters need, on the (possibly decimated) pixel grid ``rows`` x ``columns``.

    ``points`` (h, w, 3) float32 metres with the camera at the origin (sky pixels on the sky
    cylinder of radius ``settings.far``); ``distance`` (h, w); ``sky`` (h, w) bool; ``normals``
    (h, w, 3) unit, facing the camera; ``colors`` (h, w, 3) float32 in [0, 1]; ``ground_height``
    metres below the camera (detected, else None); ``world_scale`` the factor applied to raw
    distances."""

    projection: CylindricalProjection
    rows: np.ndarray
    columns: np.ndarray
    points: np.ndarray
    distance: np.ndarray
    sky: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    settings: GeometrySettings
    world_scale: float
    ground_height: Optional[float]

    @property
    def wraps(self) -> bool:
        """True when the last column joins the first (a full 360-degree panorama)."""
        return self.projection.full_circle

    def metadata(self) -> dict:
        return {
            "projection": self.projection.to_dict(),
            "geometry": self.settings.to_dict(),
            "world_scale": self.world_scale,
            "ground_height": self.ground_height,
            "grid": [int(len(self.rows)), int(len(self.columns))],
        }


def _grid(size: int, step: int) -> np.ndarray:
    return np.arange(0, size, step, dtype=np.int64)


def check_step(step) -> int:
    try:
        step = int(step)
    except (TypeError, ValueError):
        raise UserInputError(f"step {step!r} is not a whole number; use e.g. step=2") from None
    if step < 1:
        raise UserInputError(f"step must be 1 or more (1 = one vertex per pixel), got {step}")
    return step


def build_world(snapshot, step: int = 1, overrides: Optional[dict] = None) -> WorldGeometry:
    """Points, normals, sky and colours of a snapshot, every ``step``-th pixel in each direction.

    Distance comes from the ``depth`` layer, else from integrating the ``normal`` layer; normals
    come from the ``normal`` layer when there is one, else from the distance grid
    (``distance_normals``). ``overrides``
    replaces geometry settings (e.g. ``{"far": 500}``) for this call only."""
    step = check_step(step)
    projection = snapshot.projection
    settings = GeometrySettings.from_dict(snapshot.geometry)
    if overrides:
        settings = settings.with_overrides(**overrides)
    rows, columns = _grid(projection.height, step), _grid(projection.width, step)
    depth = snapshot.modalities.get("depth")
    normal = snapshot.modalities.get("normal")
    if depth is not None:
        disparity = np.ascontiguousarray(depth[::step, ::step, 0], dtype=np.float32)
        raw = raw_distance(disparity, settings)
        sky = sky_mask(disparity, settings)
    elif normal is not None and normal.shape[-1] == 3:
        from .normals_integration import distance_from_normals

        raw = distance_from_normals(normal, projection)[::step, ::step]
        sky = np.zeros(raw.shape, dtype=bool)
    else:
        raise SceneError("the scene has no depth or normal layer to build 3D from; "
                         "add one (generate with a depth modality or estimate depth) and export again")

    # Normals fix the shape but not the size: a normals-only world is always scaled by its ground.
    fit = settings.fit_ground or depth is None
    world_scale, ground = 1.0, None
    if fit:
        unscaled = points_from_distance(np.where(sky, 1.0, raw), projection, rows, columns)
        found = detect_ground(unscaled, ~sky & np.isfinite(raw))
        if found is not None and _GROUND_SCALE_RANGE[0] <= settings.eye_height / found <= _GROUND_SCALE_RANGE[1]:
            world_scale, ground = settings.eye_height / found, settings.eye_height
        elif depth is None:
            world_scale = _NORMALS_ONLY_MEDIAN_DISTANCE / float(np.median(raw))
        if depth is not None:  # sky was decided on unscaled distances; far is in metres
            sky = sky_mask(disparity, settings, world_scale)

    distance = np.clip(raw * np.float32(world_scale), settings.near, settings.far).astype(np.float32)
    distance[sky | ~np.isfinite(distance)] = settings.far
    points = points_from_distance(distance, projection, rows, columns)
    if not fit:  # metric depth: report where the ground is, without moving anything
        ground = detect_ground(points, ~sky)

    if normal is not None and normal.shape[-1] == 3:
        normals = camera_to_world_normals(normal[::step, ::step], projection, columns)
    else:
        normals = distance_normals(distance, projection, rows, columns, step)
    # The sky is seen from inside its cylinder: its normals face the camera.
    if sky.any():
        normals[sky] = -unit_rays(sky.shape, projection, columns)[sky]

    colors = snapshot.image[::step, ::step]  # a view: exporters copy what they keep
    return WorldGeometry(projection=projection, rows=rows, columns=columns, points=points, distance=distance,
                         sky=sky, normals=normals, colors=colors, settings=settings,
                         world_scale=float(world_scale), ground_height=ground)
