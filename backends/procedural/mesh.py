"""The ground around an eye as a triangle mesh, finer near the eye and coarser with distance.

Level 0 is a square grid of ``base_cell`` cells reaching ``RING_CELLS`` cells from the eye; each
further level doubles the cell size and the reach and leaves out the square the level inside
covers. Where a fine level meets a coarse one, the fine level's odd border vertices take the
height of the coarse edge (the mean of their two neighbours), so no crack opens between them.
Water is part of the surface (``Heightfield.surface``) and is coloured as water.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .render import shade_surface

RING_CELLS = 48  # cells from the eye to a level's outer edge


def _level(eye, cell: float, inner: bool):
    """(xs, ys) of a level's (2R+1)^2 posts and its quads (i, j) left after the hole."""
    n = 2 * RING_CELLS + 1
    offsets = (np.arange(n) - RING_CELLS) * cell
    xs, ys = np.meshgrid(eye[0] + offsets, eye[1] + offsets)
    qi, qj = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    keep = np.ones_like(qi, dtype=bool)
    if inner:  # the level inside covers the middle half
        q = RING_CELLS // 2
        keep = ~((qi >= RING_CELLS - q) & (qi < RING_CELLS + q) & (qj >= RING_CELLS - q) & (qj < RING_CELLS + q))
    return xs, ys, qi[keep], qj[keep]


def _stitch_border(z: np.ndarray) -> np.ndarray:
    """Odd vertices along the outer border take the mean of their neighbours (the coarse edge)."""
    z = z.copy()
    for edge in (z[0, :], z[-1, :], z[:, 0], z[:, -1]):
        edge[1:-1:2] = 0.5 * (edge[0:-2:2] + edge[2::2])
    return z


@dataclass
class TerrainMesh:
    """The ground around an eye: one piece per level, each with at most 65535 vertices."""

    vertices: np.ndarray  # (N, 3) world metres
    colours: np.ndarray  # (N, 3) float32 in [0, 1]
    pieces: list  # per level: (first vertex, triangles (M, 3) uint16 indices into its vertices, cell size m)
    slope: np.ndarray  # (N,) ground slope (rise per metre) at each vertex

    def triangles(self) -> np.ndarray:
        """All triangles (M, 3) as uint32 indices into ``vertices``."""
        return np.concatenate([tris.astype(np.uint32) + first for first, tris, _ in self.pieces])

    def cell_sizes(self) -> np.ndarray:
        """(N,) the cell size of each vertex's level: how coarsely the mesh follows the ground there."""
        starts = [first for first, _, _ in self.pieces] + [len(self.vertices)]
        return np.repeat([cell for _, _, cell in self.pieces], np.diff(starts)).astype(np.float32)


def terrain_mesh(world, eye, levels: int, base_cell: float) -> TerrainMesh:
    verts, pieces = [], []
    n = 2 * RING_CELLS + 1
    for level in range(levels):
        cell = base_cell * 2 ** level
        xs, ys, qi, qj = _level(eye, cell, inner=level > 0)
        z = world.field.surface(xs, ys)
        if level < levels - 1:
            z = _stitch_border(z)
        index = qi * n + qj
        tris = np.concatenate([np.stack([index, index + n, index + 1], 1),
                               np.stack([index + 1, index + n, index + n + 1], 1)]).astype(np.uint16)
        pieces.append((level * n * n, tris, cell))
        verts.append(np.stack([xs.ravel(), ys.ravel(), z.ravel()], 1))
    vertices = np.concatenate(verts)
    up = world.field.normal(vertices[:, 0], vertices[:, 1])[:, 2]
    slope = np.sqrt(np.maximum(1.0 - up * up, 0.0)) / np.maximum(up, 0.05)
    return TerrainMesh(vertices=vertices, colours=_colours(world, eye, vertices), pieces=pieces, slope=slope)


def _colours(world, eye, vertices):
    """Each vertex as the eye would see it (lit, with the air in front), water as water."""
    offset = vertices - np.asarray(eye)
    dist = np.maximum(np.linalg.norm(offset, axis=1), 1e-3)
    dirs = offset / dist[:, None]
    colours = shade_surface(world, vertices, dirs, dist, eye[2])
    if world.field.has_water:
        wet = world.field.sample(vertices[:, 0], vertices[:, 1]) < world.field.water_level - 1e-3
        if wet.any():
            from .water import body_colour

            depth = world.field.water_level - world.field.sample(vertices[wet, 0], vertices[wet, 1])
            sky = world.sky.base(np.repeat(np.array([[0.0, 0.6, 0.8]]), wet.sum(), 0))
            water = 0.45 * sky + 0.55 * body_colour(world.recipe.biome, depth, world.light)
            colours[wet] = world.atmosphere.apply(water, dirs[wet], eye[2], vertices[wet, 2], dist[wet])
    return np.clip(colours, 0, 1).astype(np.float32)
