"""The ``normal`` modality: unit surface normals, and an estimator that derives them from depth.

Normals are 3 channels in [-1, 1] in the camera frame of their pixel column (a cylindrical
panorama is a fan of vertical pinhole cameras): x to the right along the panorama, y up, z toward
the viewer. A wall facing the camera is (0, 0, 1); the ground is (0, 1, 0). The VAE sees the
vectors as they are (the usual RGB encoding (n + 1) / 2, expressed in the VAE's [-1, 1] range);
decoding renormalises to unit length. The preview is that RGB encoding as 8-bit colour.

The estimator needs no weights: it turns a depth map into 3D points with the cylindrical
projection and takes the cross product of neighbouring differences. Its signature departs from
the plain ``estimator(rgb, **options)`` on purpose: normals are a function of depth, not of colour,
so it takes ``depth`` (and the ``projection`` and ``geometry`` that turn disparity into points).
Without a depth map it can estimate one first when given ``depth_model`` (see ``depth.estimate``);
with neither it stops with an error saying so.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from worldgen.errors import UserInputError
from worldgen.geometry.rays import column_azimuths, points_from_distance
from worldgen.geometry.world import GeometrySettings, disparity_to_distance, sky_mask
from worldgen.geometry.projection import CylindricalProjection
from worldgen.specs import ModalitySpec

from .codecs import expect_channels

TOWARD_VIEWER = np.array([0.0, 0.0, 1.0], dtype=np.float32)
# When no projection is given the image is taken as an ordinary photo (training data), whose
# horizontal field of view is about this wide; a panorama passes its own projection.
PHOTO_SPAN_DEG = 60.0


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Normalise along the last axis; zero or non-finite vectors become 'toward the viewer'."""
    v = np.nan_to_num(np.asarray(vectors, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    out = np.where(length > 1e-8, v / np.maximum(length, 1e-12), TOWARD_VIEWER)
    return out.astype(np.float32)


def encode(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals -> (H, W, 3) VAE input in [-1, 1] (renormalised first)."""
    return _unit(expect_channels(normals, 3, "normals"))


def decode(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) VAE output -> (H, W, 3) unit normals."""
    return _unit(expect_channels(image, 3, "a decoded VAE image"))


def preview(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) normals -> (H, W, 3) uint8 in the usual RGB encoding (n + 1) / 2."""
    rgb = (_unit(expect_channels(normals, 3, "normals")) + 1.0) / 2.0
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


# Geometry ----------------------------------------------------------------------------------------

def _difference(points: np.ndarray, axis: int, wrap: bool, edge_ratio: float) -> np.ndarray:
    """Derivative of the points along one image axis.

    Central differences where the surface is smooth (exact for a circle, so a constant-distance
    wall gets exact normals); where the step on one side is ``edge_ratio`` times longer than on
    the other, the pixel sits on a depth discontinuity and the shorter one-sided step is used,
    so silhouettes do not get normals that bridge foreground and background.
    """
    forward = np.roll(points, -1, axis=axis) - points
    backward = points - np.roll(points, 1, axis=axis)
    if not wrap:  # the image border has one neighbour only
        first = [slice(None)] * points.ndim
        last = [slice(None)] * points.ndim
        first[axis], last[axis] = 0, -1
        backward[tuple(first)] = forward[tuple(first)]
        forward[tuple(last)] = backward[tuple(last)]
    f_len = np.linalg.norm(forward, axis=-1, keepdims=True)
    b_len = np.linalg.norm(backward, axis=-1, keepdims=True)
    central = (forward + backward) / 2.0
    shorter = np.where(f_len <= b_len, forward, backward)
    jump = np.maximum(f_len, b_len) > edge_ratio * np.maximum(np.minimum(f_len, b_len), 1e-12)
    return np.where(jump, shorter, central)


def world_to_camera(normals: np.ndarray, projection: CylindricalProjection) -> np.ndarray:
    """World-frame vectors (H, W, 3) -> each column's camera frame (x right, y up, z toward viewer);
    the inverse of ``worldgen.geometry.normals.camera_to_world_normals``."""
    theta = column_azimuths(projection)[None, :]
    cos, sin = np.cos(theta), np.sin(theta)
    x = normals[..., 0] * cos + normals[..., 2] * sin  # right = (cos, 0, sin)
    z = -normals[..., 0] * sin + normals[..., 2] * cos  # toward viewer = (-sin, 0, cos)
    return np.stack([x, normals[..., 1], z], axis=-1)


def normals_from_distance(distance: np.ndarray, projection: CylindricalProjection, edge_ratio: float = 3.0) -> np.ndarray:
    """(H, W) or (H, W, 1) horizontal distance -> (H, W, 3) unit normals in the camera frame.

    The normal is the cross product of the downward and rightward point differences (down x right
    faces the viewer). Columns wrap around when the panorama spans 360 degrees, so the seam gets
    the same normals as everywhere else.
    """
    r = np.asarray(distance, dtype=np.float64)
    if r.ndim == 3 and r.shape[-1] == 1:
        r = r[..., 0]
    if r.shape != (projection.height, projection.width):
        size = f"{r.shape[1]}x{r.shape[0]}" if r.ndim == 2 else f"of shape {r.shape}"
        raise UserInputError(f"distance map is {size} but the projection is "
                             f"{projection.width}x{projection.height}; pass the projection of that map")
    if edge_ratio <= 1.0:
        raise UserInputError(f"edge_ratio={edge_ratio} must be above 1 (3 is a good value)")
    points = points_from_distance(r, projection).astype(np.float64)
    right = _difference(points, axis=1, wrap=projection.full_circle, edge_ratio=edge_ratio)
    down = _difference(points, axis=0, wrap=False, edge_ratio=edge_ratio)
    world = np.cross(down, right)
    return _unit(world_to_camera(world, projection))


def estimate(
    rgb: Optional[np.ndarray],
    depth: Optional[np.ndarray] = None,
    projection: Optional[CylindricalProjection] = None,
    geometry: Optional[dict] = None,
    *,
    depth_model: Any = None,
    device: Any = None,
    span_deg: float = PHOTO_SPAN_DEG,
    edge_ratio: float = 3.0,
) -> np.ndarray:
    """Normals from a depth map: (H, W, 1) disparity in [0, 1] -> (H, W, 3) unit normals.

    ``projection``: the panorama's (a scene snapshot's); without it the image is a photo spanning
    ``span_deg`` degrees. ``geometry``: the snapshot's numbers that turn disparity into distance
    (``worldgen.geometry.world.GeometrySettings``; None means relative-depth defaults, whose overall
    scale does not matter for normals). With no ``depth``, ``depth_model`` (a depth-estimation
    model id, folder or pipeline) estimates it from ``rgb`` first. Sky pixels get the normal
    facing the viewer.
    """
    if depth is None:
        if depth_model is None:
            raise UserInputError(
                "normals are estimated from depth: pass depth=<(H, W, 1) disparity map>, or "
                "depth_model=<DPT or Depth Anything model id or folder> to estimate depth from the image first"
            )
        if rgb is None:
            raise UserInputError("estimating depth first needs the RGB image; pass rgb as well as depth_model")
        from .depth import estimate as estimate_depth

        depth = estimate_depth(rgb, model=depth_model, device=device)
    disparity = expect_channels(depth, 1, "depth")[..., 0]
    height, width = disparity.shape
    if rgb is not None:
        rgb_shape = np.shape(rgb)[:2]
        if rgb_shape != (height, width):
            raise UserInputError(f"depth is {width}x{height} but the image is {rgb_shape[1]}x{rgb_shape[0]}; pass layers of one size")
    if projection is None:
        projection = CylindricalProjection(width, height, span_deg)
    settings = GeometrySettings.from_dict(geometry)
    normals = normals_from_distance(disparity_to_distance(disparity, settings), projection, edge_ratio=edge_ratio)
    normals[sky_mask(disparity, settings)] = TOWARD_VIEWER
    return normals


SPEC = ModalitySpec(
    name="normal",
    channels=3,
    value_range=(-1.0, 1.0),
    meaning="unit surface normals in each column's camera frame: x right, y up, z toward the viewer",
    geometry="normals",
    encode=encode,
    decode=decode,
    preview=preview,
    estimator=estimate,
)
