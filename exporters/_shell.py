"""The pieces of a GLB world around the panorama mesh: the sky shell (a cylinder just beyond
``far``, with caps when closed), the ground disc under the eye, the skirts that join the near and
far sides of each depth cut, and the winding that makes closed pieces face the eye."""

from __future__ import annotations

import math

import numpy as np

SKY_SEGMENTS = 128  # sky cylinder columns for a full circle: the texture stays within 0.1 texel


def texture_width(world, uv16: bool) -> int:
    return world.projection.width + (1 if world.wraps and uv16 else 0)


def facing_eye(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces re-wound where needed so that their front (counter-clockwise) side faces the eye at
    the origin: closed pieces (caps, disc) are seen from inside."""
    p = positions.astype(np.float64)
    a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
    away = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0
    faces = faces.copy()
    faces[away] = faces[away][:, [0, 2, 1]]
    return faces


def sky_shell(world, closed: bool, uv16: bool):
    """(positions, faces, uvs) of the sky: a coarse cylinder behind everything carrying the whole
    panorama (from the eye its texture is exact, so it also backs every hairline gap), and flat caps
    above and below it that continue the top and bottom rows."""
    proj = world.projection
    span = math.radians(proj.span_deg)
    segments = max(8, int(math.ceil(SKY_SEGMENTS * proj.span_deg / 360.0)))
    # Column positions (in pixels) of the segment ends: a full circle runs from the first column's
    # centre round to its repeat; a partial span from its left edge to its right edge.
    if world.wraps:
        x = np.linspace(0.0, proj.width, segments + 1)
    else:
        x = np.linspace(-0.5, proj.width - 0.5, segments + 1)
    theta = span * (x + 0.5) / proj.width
    # Chords of a circle lie inside it: push the vertices out so every chord stays beyond ``far``.
    radius = world.settings.far / math.cos(span / segments / 2) * 1.001
    t = np.array([proj.height / 2.0, -proj.height / 2.0]) / proj.focal_px  # top and bottom image edges
    ring = np.stack([np.sin(theta), np.zeros_like(theta), -np.cos(theta)], axis=1) * radius
    top, bottom = ring + [0.0, radius * t[0], 0.0], ring + [0.0, radius * t[1], 0.0]
    u = (x + 0.5) / texture_width(world, uv16)
    n = segments + 1
    positions = [top, bottom]
    uvs = [np.stack([u, np.zeros(n)], 1), np.stack([u, np.ones(n)], 1)]
    k = np.arange(segments)
    faces = [np.stack([k, k + n, k + 1], 1), np.stack([k + 1, k + n, k + 1 + n], 1)]
    if closed:
        mid = (u[:-1] + u[1:]) / 2
        for rim, y, v in ((0, top[0, 1], 0.0), (n, bottom[0, 1], 1.0)):
            base = sum(len(p) for p in positions)
            positions.append(np.tile([0.0, y, 0.0], (segments, 1)))
            uvs.append(np.stack([mid, np.full(segments, v)], 1))
            faces.append(np.stack([rim + k, rim + k + 1, base + k], 1))
    positions = np.concatenate(positions).astype(np.float32)
    faces = facing_eye(positions, np.concatenate(faces).astype(np.uint32))
    return positions, faces, np.concatenate(uvs).astype(np.float32)


def ground_disc(flat_pos, flat_uv, rim: np.ndarray, depth: float):
    """(positions, faces, uvs) of a disc from the terrain's bottom edge (``rim``: grid indices in
    column order) to a point ``depth`` below the eye: it closes the hole under the camera, coloured
    by the bottom row (each wedge's centre copy takes the middle UV of its wedge)."""
    if len(rim) < 2:
        return None
    m = len(rim) - 1
    pos = np.concatenate([flat_pos[rim], np.tile([0.0, -depth, 0.0], (m, 1))]).astype(np.float32)
    uv_rim = flat_uv[rim]
    uvs = np.concatenate([uv_rim, (uv_rim[:-1] + uv_rim[1:]) / 2]).astype(np.float32)
    k = np.arange(m)
    faces = facing_eye(pos, np.stack([k, k + 1, len(rim) + k], 1).astype(np.uint32))
    return pos, faces, uvs


def skirts(flat_pos, flat_uv, flat_dist, flat_sky, cut: np.ndarray, horizon: np.ndarray):
    """(positions, faces, uvs) of the triangles the terrain leaves out between surfaces: across
    each cut depth edge they connect the near side to the far side (what opens when the camera moves
    is covered by a stretch of the edge's own texture, not by the sky behind), and along the
    horizon their sky corners come in to the terrain's distance so the terrain meets the sky."""
    faces = np.concatenate([cut, horizon]).astype(np.int64)
    if not len(faces):
        return None
    corners = faces.reshape(-1)
    dist = flat_dist[faces]
    sky = flat_sky[faces]
    fill = np.where(sky, -np.inf, dist).max(axis=1, keepdims=True)
    target = np.where(sky, fill, dist).reshape(-1)
    pos = flat_pos[corners] * (target / flat_dist[corners])[:, None]
    return pos.astype(np.float32), np.arange(len(corners), dtype=np.uint32).reshape(-1, 3), flat_uv[corners]


def toward_eye(points: np.ndarray) -> np.ndarray:
    """Unit normals pointing back along each point's ray to the eye (for surfaces seen head-on)."""
    n = -points.astype(np.float32)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), np.float32(1e-12))
