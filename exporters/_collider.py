"""The GLB's physics collider: a decimated copy of the terrain that game engines collide with but
do not draw, closed under the camera so a player spawned at the eye stands on it.

Engines are told three ways that it is not for drawing: the node name ends in ``-colonly`` (Godot's
import hint for a collision-only node), ``extras.collider`` is true (Unity and Unreal importers
expose extras to scripts), and its material is fully transparent alpha-blended (three.js, Blender
and glTFast draw nothing, and three.js's loader turns depth writes off for blended materials, so
it never hides the terrain behind it; without a material three.js would draw it in opaque black).
"""

from __future__ import annotations

import numpy as np

MATERIAL_NAME = "collider-invisible"


def collider_mesh(world, step: int, threshold: float):
    """(positions, faces) of the decimated terrain plus a fan from its bottom row to the ground
    point under the eye (the band does not look straight down: without the fan nothing is within
    ~2 m of the spawn point), or None when nothing is left."""
    from ._grid_mesh import triangulate

    dist = world.distance[::step, ::step]
    sky = world.sky[::step, ::step]
    grid = world.points[::step, ::step]
    # The last kept column and column 0 are at most one step apart, so joining them is right.
    tris = triangulate(dist, sky, threshold, "shared" if world.wraps else "none", want_sky=False)
    faces = [tris.terrain_vertices[tris.terrain].astype(np.int64)] if len(tris.terrain) else []
    h, w = dist.shape
    rim = (h - 1) * w + np.flatnonzero(~sky[-1])  # the bottom row's flat indices, shared with the terrain
    positions = np.concatenate([grid.reshape(-1, 3), [[0.0, -float(world.ground_height or world.settings.eye_height),
                                                       0.0]]])
    if len(rim) >= 2:
        k = np.arange(len(rim) if world.wraps else len(rim) - 1)
        fan = np.stack([rim[k], rim[(k + 1) % len(rim)], np.full(len(k), h * w)], axis=1)
        faces.append(_up_facing(positions, fan))
    if not faces:
        return None
    faces = np.concatenate(faces)
    used, compact = np.unique(faces, return_inverse=True)
    return positions[used].astype(np.float32), compact.reshape(-1, 3).astype(np.uint32)


def _up_facing(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces re-wound so their front (counter-clockwise) side faces up, toward a player standing on them."""
    a, b, c = positions[faces[:, 0]], positions[faces[:, 1]], positions[faces[:, 2]]
    down = np.cross(b - a, c - a)[:, 1] < 0
    faces = faces.copy()
    faces[down] = faces[down][:, [0, 2, 1]]
    return faces


def collider_material(gltf) -> int:
    """Index of a new fully transparent, alpha-blended material (see the module docstring)."""
    from pygltflib import Material, PbrMetallicRoughness

    gltf.materials.append(Material(name=MATERIAL_NAME, alphaMode="BLEND", doubleSided=True,
                                   pbrMetallicRoughness=PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 0.0],
                                                                             metallicFactor=0.0, roughnessFactor=1.0),
                                   extras={"collider": True}))
    return len(gltf.materials) - 1
