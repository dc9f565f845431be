"""Keeping the GLB inside common viewers' far planes.

Blender's default clip end is 1000 m and many engines' default far planes are of that order; a sky
shell beyond it is clipped away (it used to sit at 1001.3 m). The sky shell is the farthest
geometry, and its farthest points are its top and bottom rims (above the horizon by the band's
half height), so ``far`` is lowered until those rims lie within ``SKY_LIMIT`` metres of the eye.

What lies beyond the lowered ``far`` is not dropped: distances past a knee are compressed along
their own rays (``FarCompression``), so from the eye the world looks exactly as before, its
topology (and so its cut edges) is unchanged, and only the parallax of far geometry seen from off
the eye shrinks. A procedural world's ground reaches kilometres; a JointNet world's far plane is
1000 m: both fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

SKY_LIMIT = 900.0  # metres: the farthest any vertex may be from the eye
SHELL_MARGIN = 1.001  # the sky shell's radius over far (_shell.sky_shell)
KNEE = 0.5  # distances below this fraction of the lowered far stay exact
ROOM = 0.98  # compressed distances stay below this fraction of the lowered far (the sky shell is beyond it)


def far_limit(projection, full_circle_segments: int) -> float:
    """The largest ``far`` whose sky shell (chords pushed out to stay beyond far, as many as glb's
    sky gives the span, rims at the band's top and bottom slopes) stays within ``SKY_LIMIT`` of the eye."""
    segments = max(8, int(math.ceil(full_circle_segments * projection.span_deg / 360.0)))
    slope = projection.height / 2.0 / projection.focal_px
    span = math.radians(projection.span_deg)
    radius_per_far = SHELL_MARGIN / math.cos(span / segments / 2)
    return SKY_LIMIT / (radius_per_far * math.sqrt(1.0 + slope * slope)) * 0.999


@dataclass(frozen=True)
class FarCompression:
    """Horizontal distances d below ``knee`` stay; beyond it they approach ``knee + room`` smoothly
    (slope 1 at the knee, monotonic), so everything lands inside the lowered ``far``."""

    knee: float
    room: float
    far: float

    def __call__(self, distance: np.ndarray) -> np.ndarray:
        d = np.asarray(distance, dtype=np.float64)
        beyond = np.maximum(d - self.knee, 0.0)
        return np.where(d > self.knee, self.knee + self.room * -np.expm1(-beyond / self.room), d).astype(np.float32)

    def scale(self, distance: np.ndarray) -> np.ndarray:
        """The factor that moves a point at ``distance`` along its ray to its compressed distance."""
        d = np.maximum(np.asarray(distance, dtype=np.float32), np.float32(1e-6))
        return self(d) / d


def far_compression(projection, far: float, segments: int):
    """The compression for a world whose far plane is ``far``, or None when it already fits."""
    limit = far_limit(projection, segments)
    if far <= limit:
        return None
    return FarCompression(knee=KNEE * limit, room=(ROOM - KNEE) * limit, far=limit)


def fit_world(world, compression):
    """``world`` (a ``WorldGeometry``) with its far geometry compressed and its sky on the lowered far."""
    if compression is None:
        return world
    sky = world.sky
    distance = np.where(sky, np.float32(compression.far), compression(world.distance)).astype(np.float32)
    scale = np.where(sky, np.float32(compression.far) / np.maximum(world.distance, np.float32(1e-6)),
                     compression.scale(world.distance))
    return replace(world, distance=distance, points=(world.points * scale[..., None]).astype(np.float32),
                   settings=replace(world.settings, far=compression.far))
