"""Column ray marching over the heightfield ("voxel space"), for any eye and any set of azimuths.

Every image column is one azimuth. Along it the surface is sampled at distances that grow
geometrically (fine near the eye, coarse far away); each sample's elevation tangent
``(height - eye_z) / distance`` is kept as a running maximum. A pixel whose ray rises at tangent
``t`` first meets the ground at the first sample whose running maximum reaches ``t`` (one
``searchsorted`` for all pixels at once); the hit is then refined between that sample and the one
before by regula falsi on the surface itself, so the distance is the true distance along the ray.
Rows are given as elevation tangents, so cylindrical panoramas, equirectangular spheres and
mirrored (reflection) rays all use the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

NEAR_STEP_M = 0.4  # sample spacing near the eye
REL_STEP = 0.012  # beyond, each step is 1.2 % of the distance
_TAN_LIMIT = 1.0e3  # rays steeper than this (0.06 deg from vertical) are treated as this steep
_BLOCK = 4.0 * _TAN_LIMIT


def step_distances(max_m: float, near_step: float = NEAR_STEP_M, rel: float = REL_STEP) -> np.ndarray:
    """Horizontal sample distances: ``near_step`` apart until that is ``rel`` of the distance, then geometric."""
    knee = near_step / rel
    near = np.arange(near_step, knee, near_step)
    far = knee * (1 + rel) ** np.arange(int(np.ceil(np.log(max_m / knee) / np.log1p(rel))) + 1)
    return np.concatenate([near, far])


@dataclass
class Columns:
    """The samples of one march: per column (W, K) surface heights and their running max tangent."""

    eye: tuple
    sin: np.ndarray  # (W,)
    cos: np.ndarray
    dist: np.ndarray  # (K,)
    heights: np.ndarray  # (W, K)
    keys: np.ndarray  # (W*K,) running max tangent + column * _BLOCK, sorted
    eye_ground: float  # the surface right under the eye


def march(surface: Callable, eye, azimuths: np.ndarray, dist: np.ndarray,
          start: Optional[np.ndarray] = None) -> Columns:
    """Sample ``surface(x, y)`` along every azimuth (radians, clockwise from north). Samples nearer
    than ``start`` (per column, metres) do not occlude."""
    ex, ey, ez = eye
    s, c = np.sin(azimuths), np.cos(azimuths)
    xs = ex + s[:, None] * dist[None, :]
    ys = ey + c[:, None] * dist[None, :]
    heights = surface(xs, ys).astype(np.float32)
    tangent = (heights - np.float32(ez)) / dist[None, :].astype(np.float32)
    if start is not None:
        tangent = np.where(dist[None, :] < start[:, None], -_TAN_LIMIT, tangent)
    running = np.maximum.accumulate(np.clip(tangent, -_TAN_LIMIT, _TAN_LIMIT), axis=1).astype(np.float64)
    running += (np.arange(len(azimuths)) * _BLOCK)[:, None]
    ground = float(surface(np.array([ex]), np.array([ey]))[0])
    return Columns(eye=eye, sin=s, cos=c, dist=dist, heights=heights, keys=running.reshape(-1), eye_ground=ground)


def first_hits(cols: Columns, surface: Callable, column: np.ndarray, tangent: np.ndarray, iterations: int = 2):
    """Horizontal distance to the surface for rays (column index, elevation tangent); inf where
    the ray reaches the sky. Refined by regula falsi between the bracketing samples."""
    k_count = len(cols.dist)
    tangent = np.clip(tangent, -_TAN_LIMIT + 1e-3, _TAN_LIMIT - 1e-3)
    k = np.searchsorted(cols.keys, tangent + column * _BLOCK, side="left") - column * k_count
    out = np.full(tangent.shape, np.inf)
    hit = k < k_count
    if not hit.any():
        return out
    j, t, k = column[hit], tangent[hit], k[hit]
    ex, ey, ez = cols.eye
    d1 = cols.dist[k]
    f1 = ez + d1 * t - cols.heights[j, k]
    prev = np.maximum(k - 1, 0)
    d0 = np.where(k > 0, cols.dist[prev], 0.0)
    h0 = np.where(k > 0, cols.heights[j, prev], min(cols.eye_ground, ez - 1e-3))
    f0 = ez + d0 * t - h0
    s, c = cols.sin[j], cols.cos[j]
    for _ in range(iterations):
        d = d0 + (d1 - d0) * np.clip(f0 / np.maximum(f0 - f1, 1e-9), 0.0, 1.0)
        f = ez + d * t - surface(ex + s * d, ey + c * d)
        above = f > 0
        d0, f0 = np.where(above, d, d0), np.where(above, f, f0)
        d1, f1 = np.where(above, d1, d), np.where(above, f1, f)
    out[hit] = d0 + (d1 - d0) * np.clip(f0 / np.maximum(f0 - f1, 1e-9), 0.0, 1.0)
    return out
