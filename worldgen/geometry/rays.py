"""Rays of the cylindrical projection: the azimuth of each pixel column, the height-per-metre of each
row, and points from horizontal distances and back (conventions: ``worldgen.geometry.world``)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .projection import CylindricalProjection


def column_azimuths(projection: CylindricalProjection, columns: Optional[np.ndarray] = None) -> np.ndarray:
    """Azimuth (radians) of the given pixel columns (default: all); fractional columns allowed."""
    u = np.arange(projection.width, dtype=np.float64) if columns is None else np.asarray(columns, dtype=np.float64)
    return math.radians(projection.span_deg) * (u + 0.5) / projection.width


def row_slopes(projection: CylindricalProjection, rows: Optional[np.ndarray] = None) -> np.ndarray:
    """Height per metre of horizontal distance (y / r) of the given pixel rows (default: all)."""
    v = np.arange(projection.height, dtype=np.float64) if rows is None else np.asarray(rows, dtype=np.float64)
    return (projection.height / 2.0 - (v + 0.5)) / projection.focal_px


def points_from_distance(distance: np.ndarray, projection: CylindricalProjection,
                         rows: Optional[np.ndarray] = None, columns: Optional[np.ndarray] = None) -> np.ndarray:
    """(h, w) horizontal distances of the pixels at ``rows`` x ``columns`` -> (h, w, 3) float32 points."""
    r = np.asarray(distance, dtype=np.float32)
    theta = column_azimuths(projection, columns)
    slope = row_slopes(projection, rows).astype(np.float32)
    points = np.empty(r.shape + (3,), dtype=np.float32)
    points[..., 0] = r * np.sin(theta).astype(np.float32)[None, :]
    points[..., 1] = r * slope[:, None]
    points[..., 2] = r * -np.cos(theta).astype(np.float32)[None, :]
    return points


def project_points(points: np.ndarray, projection: CylindricalProjection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of ``points_from_distance``: (..., 3) points -> (column, row, distance), float64.

    Azimuths are taken in the full turn centred on the span's middle, so a full circle gives
    columns in [-0.5, W - 0.5)."""
    p = np.asarray(points, dtype=np.float64)
    r = np.hypot(p[..., 0], p[..., 2])
    theta = np.arctan2(p[..., 0], -p[..., 2])
    span = math.radians(projection.span_deg)
    # Azimuths in the full turn centred on the middle of the span ([0, 2 pi) for a full circle).
    start = span / 2 - math.pi
    theta = np.mod(theta - start, 2 * math.pi) + start
    column = theta / span * projection.width - 0.5
    row = projection.height / 2.0 - 0.5 - p[..., 1] / np.maximum(r, 1e-30) * projection.focal_px
    return column, row, r
