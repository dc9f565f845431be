"""Keeping the GLB inside common viewers' far planes.

Blender's default clip end is 1000 m and many engines' default far planes are of that order; a sky
shell beyond it is clipped away (it used to sit at 1001.3 m). The sky shell is the farthest
geometry, and its farthest points are its top and bottom rims (above the horizon by the band's
half height), so ``far`` is lowered until those rims lie within ``SKY_LIMIT`` metres of the eye.
Terrain beyond the lowered ``far`` becomes sky, which from the eye looks the same.
"""

from __future__ import annotations

import math

SKY_LIMIT = 900.0  # metres: the farthest any vertex may be from the eye
SHELL_MARGIN = 1.001  # the sky shell's radius over far (glb's _sky_shell)


def far_limit(projection, full_circle_segments: int) -> float:
    """The largest ``far`` whose sky shell (chords pushed out to stay beyond far, as many as glb's
    sky gives the span, rims at the band's top and bottom slopes) stays within ``SKY_LIMIT`` of the eye."""
    segments = max(8, int(math.ceil(full_circle_segments * projection.span_deg / 360.0)))
    slope = projection.height / 2.0 / projection.focal_px
    span = math.radians(projection.span_deg)
    radius_per_far = SHELL_MARGIN / math.cos(span / segments / 2)
    return SKY_LIMIT / (radius_per_far * math.sqrt(1.0 + slope * slope)) * 0.999


def fit_far_plane(snapshot, opts: dict, segments: int) -> dict:
    """``opts`` with ``far`` lowered to ``far_limit`` when the scene's (or the option's) far exceeds it."""
    from worldgen.geometry.world import GeometrySettings

    far = opts.get("far")
    if far is None:
        far = GeometrySettings.from_dict(snapshot.geometry).far
    limit = far_limit(snapshot.projection, segments)
    return dict(opts, far=min(float(far), limit)) if far > limit else opts
