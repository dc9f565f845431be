"""3D Gaussian splats (``.ply``) of a panorama world, in the layout of the original 3D Gaussian
Splatting code that splat viewers read (SuperSplat, gsplat, antimatter15/splat and others)::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  [f_rest_*]  opacity  scale_0 scale_1 scale_2  rot_0..rot_3

all float32; colour is the degree-0 spherical-harmonic coefficient ``(rgb - 0.5) / C0``, opacity a
logit, scales natural logs of standard deviations (metres), rotation a unit quaternion (w, x, y, z).

One splat per pixel (or per ``step``-th pixel). Each is a flat ellipse lying in the surface (its
thin axis along the normal, ``thickness`` of its width), ``size`` times the pixel's footprint on
that surface: the footprint across the ray, stretched along the direction in which the surface
recedes from the camera by 1 / cos(ray, normal) (at most ``max_stretch``), so a floor seen at a
grazing angle stays closed and a wall gets round discs. Sky pixels become splats
on the sky cylinder (``sky=false`` leaves them out). ``convention=opencv`` writes x right, y down,
z forward (what 3DGS training on COLMAP data produces) instead of glTF's y up, -z forward.
"""

from __future__ import annotations

import numpy as np

from worldgen.errors import UserInputError
from worldgen.geometry.rays import row_slopes
from worldgen.specs import ExporterSpec

from ._common import choice, encode_ply_vertices, option_names, read_options, world_for
from ._layer_points import with_layers

SH_C0 = 0.28209479177387814  # the constant degree-0 real spherical harmonic, 1 / (2 sqrt(pi))

DEFAULTS = {
    "step": 1,
    "sky": True,
    "size": 0.6,  # in-plane standard deviation, in pixel footprints
    "thickness": 0.1,  # along the normal, relative to the in-plane size
    "max_stretch": 4.0,
    "opacity": 0.98,
    "sh_degree": 0,  # >0 writes the zero higher-order coefficients some viewers insist on
    "convention": "gltf",  # gltf: y up, -z forward; opencv: y down, z forward
}


def _frames(points: np.ndarray, normals: np.ndarray):
    """Per-splat tangent ``a`` (the surface direction that recedes from the camera), ``b`` and
    the cosine between the viewing ray and the normal."""
    ray = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    cos = np.abs(np.einsum("ij,ij->i", ray, normals))
    a = ray - (ray * normals).sum(axis=1, keepdims=True) * normals
    length = np.linalg.norm(a, axis=1, keepdims=True)
    # Facing the camera head-on: any tangent will do; take one perpendicular to the normal and y.
    fallback = np.cross(normals, np.array([0.0, 1.0, 0.0], dtype=np.float32))
    weak = np.linalg.norm(fallback, axis=1, keepdims=True) < 1e-6
    fallback = np.where(weak, np.cross(normals, np.array([1.0, 0.0, 0.0], dtype=np.float32)), fallback)
    a = np.where(length > 1e-6, a / np.maximum(length, 1e-12), fallback / np.linalg.norm(fallback, axis=1, keepdims=True))
    b = np.cross(normals, a)
    return a.astype(np.float32), b.astype(np.float32), cos.astype(np.float32)


def quaternions(x_axis: np.ndarray, y_axis: np.ndarray, z_axis: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z), float32, of the rotations whose matrix columns are the given
    orthonormal, right-handed axes (each (n, 3)).

    The frames are orthonormal by construction, so no orthogonalisation is needed (scipy's
    from_matrix runs an SVD per matrix: 3 s for a million); Shepperd's branch on the largest of the
    trace and the diagonal keeps the division well conditioned, all in column arithmetic."""
    (m00, m10, m20), (m01, m11, m21), (m02, m12, m22) = (
        [np.ascontiguousarray(axis[:, k], dtype=np.float32) for k in range(3)] for axis in (x_axis, y_axis, z_axis))
    diagonals = np.stack([m00 + m11 + m22, m00 - m11 - m22, m11 - m00 - m22, m22 - m00 - m11])
    pick = np.argmax(diagonals, axis=0)
    q = np.empty((4, len(m00)), dtype=np.float32)
    others = ((m21 - m12, m02 - m20, m10 - m01), (m21 - m12, m01 + m10, m02 + m20),
              (m02 - m20, m01 + m10, m12 + m21), (m10 - m01, m02 + m20, m12 + m21))
    slots = ((0, 1, 2, 3), (1, 0, 2, 3), (2, 0, 1, 3), (3, 0, 1, 2))
    for k in range(4):
        sel = np.flatnonzero(pick == k)
        if not len(sel):
            continue
        big = np.float32(0.5) * np.sqrt(np.maximum(np.float32(1.0) + diagonals[k, sel], np.float32(1e-12)))
        q[slots[k][0], sel] = big
        quarter = np.float32(0.25) / big
        for slot, value in zip(slots[k][1:], others[k]):
            q[slot, sel] = value[sel] * quarter
    q /= np.sqrt((q * q).sum(axis=0))
    return q.T


def export_splat(snapshot, options: dict) -> bytes:
    opts = read_options(options, DEFAULTS, "splat")
    convention = choice(opts, "convention", ("gltf", "opencv"), "splat")
    if not 0.0 < opts["opacity"] < 1.0:
        raise UserInputError("splat option opacity must be between 0 and 1 (exclusive), e.g. 0.98")
    if opts["size"] <= 0 or opts["thickness"] <= 0 or opts["max_stretch"] < 1:
        raise UserInputError("splat options need size > 0, thickness > 0 and max_stretch >= 1")
    if opts["sh_degree"] not in (0, 1, 2, 3):
        raise UserInputError("splat option sh_degree must be 0, 1, 2 or 3")

    world = world_for(snapshot, opts)
    keep = np.ones(world.sky.shape, dtype=bool) if opts["sky"] else ~world.sky
    world, keep = with_layers(world, keep, snapshot, opts)  # issue 22: the background layer too
    points = world.points[keep]
    normals = world.normals[keep]
    colors = np.asarray(world.colors[keep], dtype=np.float32)
    step = int(opts["step"])

    # Footprint of one (decimated) pixel across the ray: r / f horizontally (one column of arc at
    # horizontal distance r) and r / (f sqrt(1 + t^2)) vertically (t = y / r of the row). On the
    # surface the receding axis grows by 1 / cos(ray, normal): exact for any plane (a wall gets
    # r / f, a floor r / (f |t|)).
    size = np.float32(opts["size"] * step / world.projection.focal_px)
    slope = np.broadcast_to(row_slopes(world.projection, world.rows).astype(np.float32)[:, None], keep.shape)[keep]
    across = world.distance[keep] * size
    a, b, cos = _frames(points, normals)
    stretch = 1.0 / np.maximum(cos, 1.0 / opts["max_stretch"])
    along = across / np.sqrt(1.0 + slope * slope) * stretch
    scales = np.stack([along, across, across * np.float32(opts["thickness"])], axis=1)

    # The Gaussian's local x, y, z axes: a, b and the normal.
    if convention == "opencv":
        flip = np.array([1.0, -1.0, -1.0], dtype=np.float32)  # 180 degrees about x: a rotation
        points, normals, a, b = points * flip, normals * flip, a * flip, b * flip
    quat = quaternions(a, b, normals)

    dc = ((colors - 0.5) / SH_C0).astype(np.float32)
    count = len(points)
    logit = np.float32(np.log(opts["opacity"] / (1.0 - opts["opacity"])))
    columns = [("x", points[:, 0]), ("y", points[:, 1]), ("z", points[:, 2]),
               ("nx", normals[:, 0]), ("ny", normals[:, 1]), ("nz", normals[:, 2]),
               ("f_dc_0", dc[:, 0]), ("f_dc_1", dc[:, 1]), ("f_dc_2", dc[:, 2])]
    rest = 3 * ((opts["sh_degree"] + 1) ** 2 - 1)
    zeros = np.zeros(count, dtype=np.float32)
    columns += [(f"f_rest_{i}", zeros) for i in range(rest)]
    columns.append(("opacity", np.full(count, logit, dtype=np.float32)))
    log_scales = np.log(np.maximum(scales, 1e-9)).astype(np.float32)
    columns += [(f"scale_{i}", log_scales[:, i]) for i in range(3)]
    columns += [(f"rot_{i}", quat[:, i]) for i in range(4)]
    comments = (f"worldgen gaussian splats: {convention} convention, metres, camera at the origin",)
    return encode_ply_vertices([(n, np.ascontiguousarray(v, dtype=np.float32)) for n, v in columns], comments)


SPEC = ExporterSpec(
    name="splat",
    extension=".ply",
    description="3D Gaussian splats (.ply in the 3DGS layout): one per pixel, sized from depth and footprint",
    export=export_splat,
    options=option_names(DEFAULTS),
)
