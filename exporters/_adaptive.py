"""Adaptive (quadtree) triangulation of a panorama's vertex grid: big cells where depth is smooth.

A cell of s x s grid quads (s = 2, 4, ... 2**max_level, aligned to multiples of s) replaces its
s*s*2 triangles by two when

1. every quad inside it is whole terrain (no sky, no cut edge: see ``_grid_mesh``), and so are its
   four children, and
2. for every grid point inside it, the ray through that point meets the cell's triangles
   - at nearly the same depth: ``|1/r_hit - 1/r| <= max_disparity`` (1/m; a depth error seen as
     parallax when the camera moves away from the eye), and
   - at a point whose interpolated texture coordinate is within ``max_texel`` texels of the
     point's own: the GPU interpolates UVs linearly across a flat triangle, while the panorama's
     UV of a direction is cylindrical, so from the eye a too-big triangle would shift the texture.

Cells next to smaller ones would leave T-junctions (hairline cracks); such a cell is drawn as a fan
from its centre through every vertex on its border, so neighbouring cells share their edges exactly.
Along a 360-degree seam (the last grid column repeats the first) both sides use the same vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AdaptiveCells:
    faces: np.ndarray  # (n, 3) uint32, flat grid numbering: the merged cells' triangles
    covered: np.ndarray  # (h - 1, q) bool: grid quads inside a merged cell


def _cell_errors(points, rays, inv_r, wv, r0, c0, s, step):
    """(max disparity error, max texel error) of cells of size s with top-left grid corners (r0, c0).

    ``points``: the flat (h * wv, 3) grid, ``rays``: its ray directions (unit horizontal length) as three flat float32 arrays,
    ``inv_r`` the flat inverse distances. For a triangle with corner ``o`` and edges ``ex``, ``ey``
    (normal n = ex x ey), the ray along direction d meets its plane at lam = (n.o) / (n.d), and
    that point's barycentric coordinates are lam (d.gx) - o.gx and lam (d.gy) - o.gy with
    gx = (ey x n) / |n|^2, gy = (n x ex) / |n|^2: three dot products per grid point."""
    offs = np.arange(s + 1)
    gi, gj = np.meshgrid(offs, offs, indexing="ij")
    gi, gj = gi.reshape(-1), gj.reshape(-1)
    first = gi + gj <= s  # grid points of triangle (a, c, b); the rest belong to (b, c, d)
    base = r0 * wv + c0
    corner = [base, base + s, base + s * wv, base + s * wv + s]
    a, b, c, dd = (points[i] for i in corner)
    worst_disp = np.zeros(len(r0), np.float32)
    worst_tex = np.zeros(len(r0), np.float32)
    bad_cell = np.zeros(len(r0), bool)
    # Triangle (a, c, b): point = a + x (b - a) + y (c - a); triangle (b, c, d): d + (1-x)(c-d) + (1-y)(b-d).
    for origin, ex, ey, sel, flip in ((a, b - a, c - a, first, False), (dd, c - dd, b - dd, ~first, True)):
        # (m, n): grid point by cell, so the reductions over a cell's points run along rows.
        flat = (gi[sel] * wv + gj[sel])[:, None] + base[None, :]
        inv = inv_r[flat]
        d = [rays[k][flat] for k in range(3)]
        gx = (gj[sel] / s).astype(np.float32)[:, None]
        gy = (gi[sel] / s).astype(np.float32)[:, None]
        if flip:
            gx, gy = 1 - gx, 1 - gy
        n = np.cross(ex, ey)
        nn = np.einsum("ij,ij->i", n, n)[:, None]  # per cell, before the transpose below
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            vx, vy = np.cross(ey, n) / nn, np.cross(n, ex) / nn

            def dot(vec):
                return d[0] * vec[None, :, 0] + d[1] * vec[None, :, 1] + d[2] * vec[None, :, 2]

            lam = np.einsum("ij,ij->i", n, origin)[None, :] / dot(n)  # horizontal distance of the hit
            e_disp = np.abs(np.float32(1.0) / lam - inv)
            bx = lam * dot(vx) - np.einsum("ij,ij->i", origin, vx)[None, :]
            by = lam * dot(vy) - np.einsum("ij,ij->i", origin, vy)[None, :]
            e_tex = np.maximum(np.abs(bx - gx), np.abs(by - gy))
        # A ray that misses (behind the eye, parallel, degenerate triangle) fails the whole cell.
        # Where no ray misses, both errors are finite; scaling after the max gives the same numbers
        # (multiplying by a positive constant keeps the order).
        bad_cell |= ~((lam > 0) & np.isfinite(e_tex)).all(axis=0)
        worst_disp = np.maximum(worst_disp, e_disp.max(axis=0))
        worst_tex = np.maximum(worst_tex, e_tex.max(axis=0) * np.float32(s * step))
    worst_disp[bad_cell] = np.inf
    worst_tex[bad_cell] = np.inf
    return worst_disp, worst_tex


def merge_cells(points: np.ndarray, distance: np.ndarray, whole: np.ndarray, step: int, max_disparity: float,
                max_texel: float, max_level: int, seam: bool) -> AdaptiveCells:
    """Merged cells over an (h, wv) vertex grid; ``whole`` (h-1, q) marks quads that are terrain
    with both triangles kept. ``seam``: the last grid column repeats the first."""
    h, wv = distance.shape
    q = whole.shape[1]
    ok = _mergeable_levels(points, distance, whole, step, max_disparity, max_texel, max_level)
    covered = np.zeros((h - 1, q), bool)
    corner = np.zeros((h, wv), bool)
    leaves = []
    for level in range(len(ok) - 1, 0, -1):
        s = 1 << level
        leaf = ok[level].copy()
        if level + 1 < len(ok):
            parent = np.repeat(np.repeat(ok[level + 1], 2, axis=0), 2, axis=1)
            leaf[:parent.shape[0], :parent.shape[1]] &= ~parent
        R, C = np.nonzero(leaf)
        if len(R) == 0:
            continue
        r0, c0 = R * s, C * s
        leaves.append((s, r0, c0))
        block = np.repeat(np.repeat(leaf, s, axis=0), s, axis=1)
        covered[:block.shape[0], :block.shape[1]] |= block
        for dr in (0, s):
            for dc in (0, s):
                corner[r0 + dr, c0 + dc] = True
    # Every quad left at full resolution contributes its corners.
    free = ~covered
    corner[:-1, :q] |= free
    corner[1:, :q] |= free
    corner[:-1, 1:q + 1] |= free
    corner[1:, 1:q + 1] |= free
    if seam:  # the repeated column is the same vertices: both sides must fan through the union
        union = corner[:, 0] | corner[:, -1]
        corner[:, 0] = corner[:, -1] = union
    faces = [np.zeros((0, 3), np.uint32)]
    for s, r0, c0 in leaves:
        faces.append(_leaf_faces(corner, wv, s, r0, c0))
    return AdaptiveCells(np.concatenate(faces).astype(np.uint32), covered)


def _mergeable_levels(points, distance, whole, step, max_disparity, max_texel, max_level) -> list[np.ndarray]:
    """Per level ``l`` (cells of 2**l quads), which cells are whole and within both error limits."""
    wv = distance.shape[1]
    inv_r = (np.float32(1.0) / distance).astype(np.float32)
    # Flat copies, gathered with one index per grid point (faster than (row, col) pairs).
    rays = [np.ascontiguousarray(points[..., k] * inv_r).reshape(-1) for k in range(3)]
    inv_flat = inv_r.reshape(-1)
    flat_points = points.reshape(-1, 3)
    ok = [whole]
    for level in range(1, max_level + 1):
        s = 1 << level
        prev = ok[-1]
        nr, nc = prev.shape[0] // 2, prev.shape[1] // 2
        if nr == 0 or nc == 0:
            break
        p = prev[:2 * nr, :2 * nc]
        cand = p[0::2, 0::2] & p[1::2, 0::2] & p[0::2, 1::2] & p[1::2, 1::2]
        R, C = np.nonzero(cand)
        if len(R) == 0:
            ok.append(cand)
            break
        good = np.zeros(len(R), bool)
        batch = max(1, (1 << 18) // ((s + 1) * (s + 1)))  # ~256 K grid points per batch: bounded memory
        for lo in range(0, len(R), batch):
            e_d, e_t = _cell_errors(flat_points, rays, inv_flat, wv, R[lo:lo + batch] * s, C[lo:lo + batch] * s, s, step)
            good[lo:lo + batch] = (e_d <= max_disparity) & (e_t <= max_texel)
        cand[R[~good], C[~good]] = False
        ok.append(cand)
    return ok


def _leaf_faces(corner: np.ndarray, wv: int, s: int, r0: np.ndarray, c0: np.ndarray) -> np.ndarray:
    k = np.arange(s)
    # The border counter-clockwise as seen from the eye: down the left, along the bottom, up the
    # right, back along the top (the order of the grid's own (a, c, b) triangles).
    di = np.concatenate([k, np.full(s, s), s - k, np.zeros(s, int)])
    dj = np.concatenate([np.zeros(s, int), k, np.full(s, s), s - k])
    rows, cols = r0[:, None] + di[None], c0[:, None] + dj[None]
    ring = corner[rows, cols]
    flat = (rows * wv + cols).astype(np.int64)
    plain = ring.sum(axis=1) == 4
    a, b = r0 * wv + c0, r0 * wv + c0 + s
    c, d = a + s * wv, b + s * wv
    two = np.stack([np.stack([a, c, b], 1), np.stack([b, c, d], 1)], 1)[plain].reshape(-1, 3)
    fan = ~plain
    leaf, pos = np.nonzero(ring[fan])
    if len(leaf) == 0:
        return two
    vert = flat[fan][leaf, pos]
    start = np.r_[0, np.flatnonzero(np.diff(leaf)) + 1]
    nxt = np.arange(1, len(leaf) + 1)
    ends = np.r_[start[1:], len(leaf)] - 1
    nxt[ends] = start
    centre = ((r0[fan] + s // 2) * wv + c0[fan] + s // 2)[leaf]
    return np.concatenate([two, np.stack([centre, vert, vert[nxt]], 1)])
