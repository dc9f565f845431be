"""The ground of a procedural world as a GLB node: the terrain itself around the eye.

A panorama mesh only has what the eye saw; a procedural world knows its whole ground. When the
snapshot carries that world (``snapshot.terrain``, set by the procedural backend), the GLB gets a
``ground`` node: the heightfield around the eye (water as a flat surface), fine near the eye and
coarser with distance (``ProceduralWorld.terrain_mesh``: 1 m cells out to 48 m, doubling to
768 m with the default levels; one primitive per level, so 16-bit indices), coloured per vertex
as the eye would see it, in place of the small disc under the camera. It sits slightly below the true ground (10 cm, plus 0.4 % of the distance, plus
half a cell times the slope), so where the panorama mesh shows the same surface, the panorama
(exact from the eye) is in front.
"""

from __future__ import annotations

import numpy as np

_UNSIGNED_BYTE = 5121
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_UNLIT = "KHR_materials_unlit"
SINK_M, SINK_PER_M = 0.10, 0.004


def ground_positions(world, mesh, lift: float, compression=None) -> np.ndarray:
    """World metres (x east, y north, z up) -> the GLB frame: y up, the eye at (0, lift, 0),
    north along -z (the panorama's first column), sunk below the true ground: a little, plus as
    much as a coarse cell can stray from it on a slope."""
    ex, ey, ez = world.eye
    vertices = mesh.vertices
    dx, dy = vertices[:, 0] - ex, vertices[:, 1] - ey
    sink = SINK_M + SINK_PER_M * np.hypot(dx, dy) + 0.5 * mesh.cell_sizes() * mesh.slope
    positions = np.stack([dx, vertices[:, 2] - ez + lift - sink, -dy], axis=1).astype(np.float32)
    if compression is not None:  # far ground moved along its rays from the eye, as the panorama mesh is
        eye = np.array([0.0, lift, 0.0], np.float32)
        positions = eye + (positions - eye) * compression.scale(np.hypot(dx, dy))[:, None]
    return positions.astype(np.float32)


def add_ground_mesh(gltf, blob, nodes: list, snapshot, lift: float, compression=None) -> bool:
    """Append the ``ground`` node for a snapshot that carries its world; False when it has none."""
    from pygltflib import Accessor, Attributes, Material, Mesh, Node, PbrMetallicRoughness, Primitive

    world = getattr(snapshot, "terrain", None)
    if world is None:
        return False
    mesh = world.terrain_mesh()
    positions = ground_positions(world, mesh, lift, compression)
    rgba = np.empty((len(mesh.colours), 4), np.uint8)
    rgba[:, :3] = np.clip(mesh.colours * 255.0 + 0.5, 0, 255)
    rgba[:, 3] = 255
    primitives = []
    starts = [first for first, _, _ in mesh.pieces]
    for (first, tris, _), end in zip(mesh.pieces, starts[1:] + [len(positions)]):
        position = blob.accessor(positions[first:end], "VEC3", _ARRAY_BUFFER, bounds=True)
        gltf.accessors.append(Accessor(bufferView=blob.view(rgba[first:end], _ARRAY_BUFFER),
                                       componentType=_UNSIGNED_BYTE, count=end - first, type="VEC4", normalized=True))
        colour = len(gltf.accessors) - 1
        indices = blob.accessor(tris.reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER)
        primitives.append((position, colour, indices))
    gltf.materials.append(Material(name="ground", doubleSided=True, extensions={_UNLIT: {}},
                                   pbrMetallicRoughness=PbrMetallicRoughness(metallicFactor=0.0, roughnessFactor=1.0)))
    material = len(gltf.materials) - 1
    gltf.meshes.append(Mesh(name="ground", primitives=[
        Primitive(attributes=Attributes(POSITION=p, COLOR_0=c), indices=i, material=material, mode=4)
        for p, c, i in primitives]))
    nodes.append(Node(name="ground", mesh=len(gltf.meshes) - 1, extras={"procedural_ground": True}))
    return True
