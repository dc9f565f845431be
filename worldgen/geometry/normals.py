"""Normals in world space: from a normal layer (each column's camera frame) and from the depth itself
(edge-aware differences of the points, wrapping across a full circle's seam)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .projection import CylindricalProjection
from .rays import column_azimuths, row_slopes


def _normalise(vectors: np.ndarray, fallback) -> np.ndarray:
    """Unit vectors (float32, in place when possible); zero-length or non-finite ones take the
    matching vector of ``fallback()`` (called only then; an array broadcastable to ``vectors``)."""
    v = np.asarray(vectors, dtype=np.float32)
    length = np.sqrt(np.einsum("...i,...i->...", v, v))
    bad = ~(length > 1e-12)  # also catches NaN
    length[bad] = 1.0
    v /= length[..., None]
    if bad.any():
        v[bad] = np.broadcast_to(fallback(), v.shape)[bad]
    return v


def camera_to_world_normals(normals: np.ndarray, projection: CylindricalProjection,
                            columns: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-column camera-frame normals (x right, y up, z toward the viewer) -> world, float32 unit.

    The column frame is right = (cos t, 0, sin t), up = y, toward viewer = (-sin t, 0, cos t)."""
    n = np.asarray(normals, dtype=np.float32)
    theta = column_azimuths(projection, columns)
    cos, sin = np.cos(theta).astype(np.float32)[None, :], np.sin(theta).astype(np.float32)[None, :]
    world = np.empty(n.shape[:2] + (3,), dtype=np.float32)
    world[..., 0] = n[..., 0] * cos - n[..., 2] * sin
    world[..., 1] = n[..., 1]
    world[..., 2] = n[..., 0] * sin + n[..., 2] * cos
    return _normalise(world, lambda: -unit_rays(world.shape[:2], projection, columns))


def unit_rays(shape, projection, columns=None) -> np.ndarray:
    theta = column_azimuths(projection, columns)
    rays = np.zeros(shape + (3,), dtype=np.float32)
    rays[..., 0] = np.sin(theta)[None, :]
    rays[..., 2] = -np.cos(theta)[None, :]
    return rays


def _edge_aware_difference(values: np.ndarray, axis: int, wrap: bool) -> np.ndarray:
    """Derivative per grid step: central where the surface is smooth, one-sided where a pixel sits
    on a depth edge (one neighbour's step is over 3 times the other's: take the smaller), so
    silhouettes and the horizon do not get normals that bridge foreground and background."""
    n = values.shape[axis]
    if n < 2:
        return np.zeros_like(values)
    forward = np.empty_like(values)
    backward = np.empty_like(values)
    fw = np.moveaxis(forward, axis, 0)
    bw = np.moveaxis(backward, axis, 0)
    src = np.moveaxis(values, axis, 0)
    fw[:-1] = src[1:] - src[:-1]
    bw[1:] = fw[:-1]
    if wrap:
        fw[-1] = src[0] - src[-1]
        bw[0] = fw[-1]
    else:  # the image border has one neighbour only
        fw[-1] = bw[-1] = src[-1] - src[-2]
        bw[0] = fw[0]
    af, ab = np.abs(forward), np.abs(backward)
    out = (forward + backward) * np.float32(0.5)
    edge = (af > 3 * ab) | (ab > 3 * af)
    np.copyto(out, np.where(af <= ab, forward, backward), where=edge)
    return out


def distance_normals(distance: np.ndarray, projection: CylindricalProjection, rows: np.ndarray,
                     columns: np.ndarray, step: int = 1) -> np.ndarray:
    """World normals (float32, unit, facing the eye) of the surface r(u, v) on a pixel grid.

    With g_u, g_v the derivatives of log r per pixel along the row and down the column and
    t = y / r of the row, the normal in the column's camera frame (x right, y up, z toward the
    viewer) is proportional to (f g_u, -f g_v, 1 - t f g_v): a wall at constant r faces the viewer,
    a floor (r = -h / t) faces up. This is the exact inverse of ``worldgen.geometry.normals_integration``
    and needs only scalar differences, no 3D cross products."""
    log_r = np.log(np.maximum(np.asarray(distance, dtype=np.float32), np.float32(1e-12)))
    f = np.float32(projection.focal_px / step)  # differences are per grid step
    fgu = _edge_aware_difference(log_r, axis=1, wrap=projection.full_circle) * f
    fgv = _edge_aware_difference(log_r, axis=0, wrap=False) * f
    del log_r
    t = row_slopes(projection, rows).astype(np.float32)[:, None]
    local = np.empty(fgu.shape + (3,), dtype=np.float32)
    local[..., 0] = fgu
    local[..., 1] = -fgv
    local[..., 2] = np.float32(1.0) - t * fgv
    # No sign check needed: n . (-P / r) = -t n_y + n_z = 1 > 0, so it always faces the eye.
    return camera_to_world_normals(local, projection, columns)
