"""Distances along view rays <-> the depth modality's disparity in a perspective view.

A monocular-depth style disparity (what JointNet's depth branch holds) is the inverse of the depth
along the camera's axis, not of the distance along each ray: ``z = distance * (ray . forward)``.
The scale is the band's (``worldgen.geometry``: ``raw = z / world_scale``, disparity from raw), so
inpainted views and the band share one depth scale.
"""

from __future__ import annotations

import numpy as np

from ..geometry.world import GeometrySettings, disparity_to_distance, distance_to_disparity, sky_mask


def to_disparity(distance: np.ndarray, cosine: np.ndarray, settings: GeometrySettings,
                 world_scale: float) -> np.ndarray:
    """(H, W) metres along rays (inf = sky, NaN = unknown: 0) -> (H, W, 1) disparity in [0, 1]."""
    finite = np.isfinite(distance)
    z = np.where(finite, distance, 1.0) * cosine
    d = distance_to_disparity(np.maximum(z, 1e-6), settings, world_scale)
    return np.clip(np.where(finite, d, 0.0), 0.0, 1.0).astype(np.float32)[..., None]


def from_disparity(disparity: np.ndarray, cosine: np.ndarray, settings: GeometrySettings,
                   world_scale: float) -> np.ndarray:
    """(H, W, 1) disparity -> (H, W) metres along rays, inf where it is sky."""
    d = np.asarray(disparity, dtype=np.float32)[..., 0]
    z = disparity_to_distance(d, settings, world_scale)
    along = z / np.maximum(cosine, 1e-6)
    return np.where(sky_mask(d, settings, world_scale), np.inf, along).astype(np.float32)
