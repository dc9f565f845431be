"""The GLB of a version with a full sphere (``worldgen sphere``): what lies above and below the band
comes from the sphere, not from stretching the band's top and bottom rows.

- ``sky-dome``: the sky shell's caps become domes (constant-latitude rings from the band's top and
  bottom edges to the poles) at the shell's radius, textured with the sphere's equirect image;
- ``ground``: the disc under the eye keeps its shape (the terrain's bottom row to the point under
  the eye) but is subdivided into rings, each vertex taking the sphere's texel on its ray from the
  eye, so the ground under the visitor shows the sphere's ground instead of a starburst.

The equirect texture's u is the azimuth over a full turn (``worldgen.reproject.rays``), repeated
across the seam (the last column of each grid has u = 1 and the sampler wraps), v the polar angle.
"""

from __future__ import annotations

import io
import math

import numpy as np

RINGS = 16  # rings from the band's edge to the pole (or to the point under the eye)
SEGMENTS = 128  # azimuth steps of a full turn


def _uv(points: np.ndarray, u_turns: np.ndarray | None = None) -> np.ndarray:
    """Equirect texture coordinates of the rays from the eye to ``points`` (u unwrapped if given)."""
    az = np.mod(np.arctan2(points[:, 0], -points[:, 2]), 2 * math.pi) / (2 * math.pi)
    lat = np.arctan2(points[:, 1], np.hypot(points[:, 0], points[:, 2]))
    return np.stack([az if u_turns is None else u_turns, (math.pi / 2 - lat) / math.pi], 1).astype(np.float32)


def _grid_faces(rows: int, cols: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a, b = (r * cols + c).ravel(), (r * cols + c + 1).ravel()
    d, e = a + cols, b + cols
    return np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)])


def sky_domes(world, radius: float):
    """(positions, faces, uvs) of the two domes beyond the band's top and bottom edges."""
    from ._shell import facing_eye

    edge = math.atan(world.projection.height / 2.0 / world.projection.focal_px)
    az = np.linspace(0.0, 2 * math.pi, SEGMENTS + 1)
    parts, faces, offset = [], [], 0
    for sign in (1.0, -1.0):
        lat = sign * np.linspace(edge, math.pi / 2 * 0.999, RINGS + 1)
        la, zz = np.meshgrid(lat, az, indexing="ij")
        pts = np.stack([np.cos(la) * np.sin(zz), np.sin(la), -np.cos(la) * np.cos(zz)], -1).reshape(-1, 3) * radius
        uv = np.stack([(zz / (2 * math.pi)).ravel(), ((math.pi / 2 - la) / math.pi).ravel()], 1)
        parts.append((pts, uv))
        faces.append(_grid_faces(RINGS + 1, SEGMENTS + 1) + offset)
        offset += len(pts)
    positions = np.concatenate([p for p, _ in parts]).astype(np.float32)
    return positions, facing_eye(positions, np.concatenate(faces).astype(np.uint32)), \
        np.concatenate([u for _, u in parts]).astype(np.float32)


def ground_rings(flat_pos: np.ndarray, rim: np.ndarray, depth: float):
    """(positions, faces, uvs) of the disc from the terrain's bottom-row vertices ``rim`` (column
    order) to the point ``depth`` below the eye, in rings, with the sphere's texture coordinates."""
    from ._shell import facing_eye

    if len(rim) < 2:
        return None
    edge = flat_pos[rim].astype(np.float64)
    turns = np.unwrap(np.arctan2(edge[:, 0], -edge[:, 2])) / (2 * math.pi)
    turns -= math.floor(turns[0])  # the seam's repeated vertex gets u one turn on, not back at 0
    centre = np.array([0.0, -depth, 0.0])
    t = np.linspace(0.0, 1.0, RINGS + 1)[:, None, None]
    pts = (edge[None] * (1 - t) + centre * t).reshape(-1, 3)
    uv = _uv(pts, np.tile(turns, RINGS + 1))
    uv[-len(rim):, 0] = np.append((turns[:-1] + turns[1:]) / 2, turns[-1])  # the centre: each wedge's middle
    faces = _grid_faces(RINGS + 1, len(rim)).astype(np.uint32)
    positions = pts.astype(np.float32)
    return positions, facing_eye(positions, faces), uv


def sphere_material(gltf, blob, sphere, unlit: bool, cache: dict) -> int:
    """A material textured with the sphere's equirect image (its own sampler: u repeats, v clamps),
    made once per file (kept in ``cache`` under "sphere")."""
    if "sphere" in cache:
        return cache["sphere"]
    from PIL import Image as PILImage
    from pygltflib import Image, Material, PbrMetallicRoughness, Sampler, Texture, TextureInfo

    buf = io.BytesIO()
    PILImage.fromarray((np.clip(sphere.image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=95)
    gltf.images.append(Image(bufferView=blob.view(buf.getvalue()), mimeType="image/jpeg", name="sphere"))
    gltf.samplers.append(Sampler(magFilter=9729, minFilter=9987, wrapS=10497, wrapT=33071))
    gltf.textures.append(Texture(sampler=len(gltf.samplers) - 1, source=len(gltf.images) - 1))
    material = Material(name="sphere", doubleSided=False, pbrMetallicRoughness=PbrMetallicRoughness(
        baseColorTexture=TextureInfo(index=len(gltf.textures) - 1), metallicFactor=0.0, roughnessFactor=1.0))
    if unlit:
        material.extensions = {"KHR_materials_unlit": {}}
    gltf.materials.append(material)
    cache["sphere"] = len(gltf.materials) - 1
    return cache["sphere"]
