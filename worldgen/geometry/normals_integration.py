"""Distance from surface normals alone (a scene generated with the normal modality and no depth).

For a point ``P = r * (D + t * up)`` seen along column direction ``D`` at row slope ``t`` (see
``worldgen.geometry.world``), a surface with normal ``n`` in the column's camera frame (x right, y up, z
toward the viewer) satisfies ``n . dP = 0`` along both image axes, which gives the gradient of
``log r`` per pixel::

    d log r / du =  n_x / (f * (n_z - t * n_y))
    d log r / dv = -n_y / (f * (n_z - t * n_y))

(u right, v down, f = focal length in pixels). ``log r`` is then the least-squares surface whose
forward differences best match those gradients: a Poisson equation, solved exactly with a cosine
transform down the rows (no flux through the top and bottom edges) and, across the columns, a
Fourier transform for a full 360-degree panorama (the seam is an ordinary neighbour) or a cosine
transform for a partial one. The result is known up to a constant factor; callers fix the scale.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from .projection import CylindricalProjection

# A surface seen almost edge-on gives an unbounded gradient; no smooth surface changes its distance
# by more than this factor (in log units) from one pixel to the next.
_MAX_LOG_STEP = 0.25


def log_distance_gradients(normals: np.ndarray, projection: CylindricalProjection) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel d(log r)/du and d(log r)/dv (float64, (H, W)) from camera-frame unit normals."""
    n = np.asarray(normals, dtype=np.float64)
    h = projection.height
    f = projection.focal_px
    slope = ((h / 2.0 - (np.arange(h) + 0.5)) / f)[:, None]
    denom = f * (n[..., 2] - slope * n[..., 1])
    # A normal facing away from the camera (or edge-on) is not a visible surface: treat it as flat.
    usable = denom > 1e-6 * f
    safe = np.where(usable, denom, 1.0)
    gu = np.where(usable, n[..., 0] / safe, 0.0)
    gv = np.where(usable, -n[..., 1] / safe, 0.0)
    return np.clip(gu, -_MAX_LOG_STEP, _MAX_LOG_STEP), np.clip(gv, -_MAX_LOG_STEP, _MAX_LOG_STEP)


def integrate_log_distance(gu: np.ndarray, gv: np.ndarray, wrap: bool) -> np.ndarray:
    """Least-squares ``z`` with ``z[:, u+1] - z[:, u] ~ gx`` and ``z[v+1] - z[v] ~ gy`` (mean 0).

    ``gu``/``gv`` are per-pixel derivatives; the differences between neighbours use their average
    (trapezoid rule). ``wrap`` makes the last column a neighbour of the first."""
    h, w = gu.shape
    if wrap:
        gx = 0.5 * (gu + np.roll(gu, -1, axis=1))  # difference from column u to u + 1 (mod W)
        div_x = np.roll(gx, 1, axis=1) - gx  # D^T gx
    else:
        gx = 0.5 * (gu[:, :-1] + gu[:, 1:])
        div_x = np.zeros((h, w))
        div_x[:, 1:] += gx
        div_x[:, :-1] -= gx
    gy = 0.5 * (gv[:-1] + gv[1:])
    div_y = np.zeros((h, w))
    div_y[1:] += gy
    div_y[:-1] -= gy
    # Normal equations D^T D z = D^T g, with D the forward differences (D^T D: the graph Laplacian).
    rhs = div_x + div_y

    coeff = fft.dct(rhs, type=2, axis=0, norm="ortho")
    lam_y = 2.0 - 2.0 * np.cos(np.pi * np.arange(h) / h)
    if wrap:
        coeff = fft.rfft(coeff, axis=1)
        lam_x = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(coeff.shape[1]) / w)
    else:
        coeff = fft.dct(coeff, type=2, axis=1, norm="ortho")
        lam_x = 2.0 - 2.0 * np.cos(np.pi * np.arange(w) / w)
    lam = lam_y[:, None] + lam_x[None, :]
    lam[0, 0] = 1.0
    coeff = coeff / lam
    coeff[0, 0] = 0.0  # the constant is free: fix the mean at 0
    if wrap:
        coeff = fft.irfft(coeff, n=w, axis=1)
    else:
        coeff = fft.idct(coeff, type=2, axis=1, norm="ortho")
    return fft.idct(coeff, type=2, axis=0, norm="ortho")


def distance_from_normals(normals: np.ndarray, projection: CylindricalProjection) -> np.ndarray:
    """(H, W, 3) camera-frame normals -> (H, W) float32 horizontal distance with median 1."""
    gu, gv = log_distance_gradients(normals, projection)
    z = integrate_log_distance(gu, gv, wrap=projection.full_circle)
    z -= np.median(z)
    return np.exp(z).astype(np.float32)
