"""Ray directions of each kind of view, and pixel coordinates of directions in each kind of view.

Shared conventions (those of ``worldgen.geometry``): azimuth ``theta`` is measured from -z toward
+x, so direction ``(cos(phi) sin(theta), sin(phi), -cos(phi) cos(theta))`` for latitude ``phi``.

- Equirectangular W x H (H = W / 2 for the full sphere): column u looks along
  ``theta = 2 pi (u + 0.5) / W`` (the same azimuths as a 360-degree cylinder of width W, so the
  band's columns line up), row v along ``phi = pi / 2 - pi (v + 0.5) / H`` (row 0 at the zenith).
- Perspective: a pinhole camera given by its forward, right and up unit vectors and its
  horizontal field of view; pixel centres at ``(u + 0.5, v + 0.5)``.
- Cube faces: the OpenGL cube-map convention (faces +x, -x, +y, -y, +z, -z; each face is a
  90-degree perspective view with the basis of ``CUBE_FACES``), as KTX files, three.js's
  ``CubeTextureLoader`` order and most engines' six-sided skyboxes use.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..geometry.projection import CylindricalProjection


class Camera(NamedTuple):
    """A pinhole view: unit forward/right/up vectors (world frame) and horizontal fov in degrees."""

    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    hfov_deg: float


def look(yaw_deg: float, pitch_deg: float, hfov_deg: float) -> Camera:
    """The camera looking ``yaw_deg`` to the right of the first column and ``pitch_deg`` up,
    with no roll (its right vector stays horizontal)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), -math.cos(yaw) * math.cos(pitch)])
    right = np.array([math.cos(yaw), 0.0, math.sin(yaw)])
    return Camera(forward, right, np.cross(right, forward), float(hfov_deg))


# name: (forward, right, up) of each OpenGL cube-map face, seen from inside the cube.
CUBE_FACES = {
    "px": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "nx": ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "py": ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    "ny": ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    "pz": ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    "nz": ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
}


def cube_camera(face: str) -> Camera:
    forward, right, up = (np.asarray(v, dtype=np.float64) for v in CUBE_FACES[face])
    return Camera(forward, right, up, 90.0)


def focal_px(width: int, hfov_deg: float) -> float:
    return width / 2.0 / math.tan(math.radians(hfov_deg) / 2.0)


def perspective_rays(camera: Camera, width: int, height: int) -> np.ndarray:
    """(height, width, 3) unit directions of a pinhole view's pixel centres."""
    f = focal_px(width, camera.hfov_deg)
    x = (np.arange(width) + 0.5 - width / 2.0) / f
    y = (height / 2.0 - (np.arange(height) + 0.5)) / f
    rays = (camera.forward[None, None, :] + x[None, :, None] * camera.right[None, None, :]
            + y[:, None, None] * camera.up[None, None, :])
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def equirect_rays(width: int, height: int, yaw_deg: float = 0.0) -> np.ndarray:
    """(height, width, 3) unit directions of an equirectangular image's pixel centres (``yaw_deg``
    turns the whole image: its column u then looks that much further right)."""
    theta = 2.0 * math.pi * (np.arange(width) + 0.5) / width + math.radians(yaw_deg)
    phi = math.pi / 2.0 - math.pi * (np.arange(height) + 0.5) / height
    cp = np.cos(phi)[:, None]
    return np.stack(np.broadcast_arrays(cp * np.sin(theta)[None, :], np.sin(phi)[:, None],
                                        -cp * np.cos(theta)[None, :]), axis=-1)


def cylinder_rays(projection: CylindricalProjection) -> np.ndarray:
    """(H, W, 3) unit directions of a cylindrical band's pixel centres."""
    from ..geometry.rays import column_azimuths, row_slopes

    theta = column_azimuths(projection)
    slope = row_slopes(projection)
    rays = np.stack(np.broadcast_arrays(np.sin(theta)[None, :], slope[:, None], -np.cos(theta)[None, :]), axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def azimuth(rays: np.ndarray) -> np.ndarray:
    """Azimuth in [0, 2 pi) of each direction."""
    return np.mod(np.arctan2(rays[..., 0], -rays[..., 2]), 2.0 * math.pi)


def to_equirect(rays: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) pixel coordinates (pixel centres at integers) of directions in an equirect."""
    horizontal = np.hypot(rays[..., 0], rays[..., 2])
    phi = np.arctan2(rays[..., 1], horizontal)
    column = azimuth(rays) / (2.0 * math.pi) * width - 0.5
    row = (math.pi / 2.0 - phi) / math.pi * height - 0.5
    return column, row


def to_cylinder(rays: np.ndarray, projection: CylindricalProjection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, row, slope) of directions in a cylindrical band; ``slope`` (y over horizontal
    distance) turns the band's horizontal distance into distance along the ray. Directions
    straight up or down get rows far outside the band."""
    from ..geometry.rays import project_points

    column, row, horizontal = project_points(rays, projection)
    slope = rays[..., 1] / np.maximum(horizontal, 1e-12)
    return column, row, slope


def to_perspective(rays: np.ndarray, camera: Camera, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, row, in_front) of directions in a pinhole view; ``in_front`` is False behind it."""
    f = focal_px(width, camera.hfov_deg)
    z = rays @ camera.forward
    ahead = z > 1e-9
    safe = np.where(ahead, z, 1.0)
    column = (rays @ camera.right) / safe * f + width / 2.0 - 0.5
    row = height / 2.0 - 0.5 - (rays @ camera.up) / safe * f
    return column, row, ahead
