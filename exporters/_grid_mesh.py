"""Triangulating a panorama's vertex grid, with cuts at depth discontinuities.

Every quad of neighbouring pixels gives two triangles, (a, c, b) and (b, c, d), where a, b are the
quad's top-left/top-right and c, d its bottom-left/bottom-right corners: counter-clockwise as seen
from the camera at the origin, so front faces point at it.

An edge between two neighbouring pixels is CUT (a depth discontinuity) when both hold:

1. its far end is more than ``1 + threshold`` times as far as its near end, and
2. its jump in inverse distance is more than ``OUTLIER`` times the smaller jump of the two edges
   beside it in the same direction.

Rule 2 keeps smooth surfaces seen at a grazing angle: on any plane, inverse distance changes at a
constant rate down a column (and almost so along a row), so a floor receding to the horizon has
large relative steps (rule 1) but no outlier step, while an object's silhouette is one big step
between small ones. A triangle is cut when one of its two grid-aligned edges is; any split of a
triangle's corners into near and far crosses one of those two edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

OUTLIER = 2.0


@dataclass
class GridTriangles:
    """Faces (n, 3) uint32 on the vertex grid: ``terrain`` (kept), ``sky`` (touching a sky
    pixel; None when not asked for) and ``cut`` (not sky, dropped at a discontinuity)."""

    terrain: np.ndarray
    sky: Optional[np.ndarray]
    cut: np.ndarray


def _neighbour_min(jumps: np.ndarray, axis: int, cyclic: bool) -> np.ndarray:
    """The smaller of the jumps of the previous and next edge along ``axis`` (inf past an end)."""
    if cyclic:
        return np.minimum(np.roll(jumps, 1, axis=axis), np.roll(jumps, -1, axis=axis))
    out = np.full_like(jumps, np.inf)
    n = jumps.shape[axis]
    if n > 1:
        lo = [slice(None)] * jumps.ndim
        hi = [slice(None)] * jumps.ndim
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        out[hi] = jumps[lo]  # previous edge
        out[lo] = np.minimum(out[lo], jumps[hi])  # next edge
    return out


def _cut_edges(d_from: np.ndarray, d_to: np.ndarray, axis: int, cyclic: bool, threshold: float) -> np.ndarray:
    near = np.minimum(d_from, d_to)
    far = np.maximum(d_from, d_to)
    with np.errstate(divide="ignore"):
        jump = np.abs(np.float32(1.0) / d_from - np.float32(1.0) / d_to)
    big = far > np.float32(1.0 + threshold) * near
    return big & (jump > np.float32(OUTLIER) * _neighbour_min(jump, axis, cyclic))


def triangulate(distance: np.ndarray, sky: np.ndarray, threshold: float, wrap: str = "none",
                want_sky: bool = True) -> GridTriangles:
    """Triangles over an (h, wv) grid of positive distances and sky flags.

    ``wrap``: "none" (quads stop at the last column), "shared" (the last column joins the first:
    a closed seam on shared vertices) or "duplicate" (the last column repeats the first, so the
    quads already close the circle; only the edge neighbours wrap)."""
    h, wv = distance.shape
    if wrap == "shared":
        q = wv
    else:
        q = wv - 1
    empty = np.zeros((0, 3), dtype=np.uint32)
    if h < 2 or q < 1:
        return GridTriangles(empty, empty if want_sky else None, empty)
    cyclic = wrap != "none"
    nxt = (np.arange(q) + 1) % wv
    left = distance[:, :q]
    right = distance[:, nxt] if wrap == "shared" else distance[:, 1:]
    cut_h = _cut_edges(left, right, axis=1, cyclic=cyclic, threshold=threshold)  # (h, q)
    cut_v = _cut_edges(distance[:-1], distance[1:], axis=0, cyclic=False, threshold=threshold)  # (h-1, wv)
    cut_v_right = cut_v[:, nxt] if wrap == "shared" else cut_v[:, 1:]
    cut1 = cut_h[:-1] | cut_v[:, :q]
    cut2 = cut_h[1:] | cut_v_right
    del cut_h, cut_v, cut_v_right

    s_right = sky[:, nxt] if wrap == "shared" else sky[:, 1:]
    sa, sb, sc, sd = sky[:-1, :q], s_right[:-1], sky[1:, :q], s_right[1:]
    sky1, sky2 = sa | sc | sb, sb | sc | sd

    base = (np.arange(h - 1, dtype=np.uint32) * np.uint32(wv))[:, None]
    a = base + np.arange(q, dtype=np.uint32)[None, :]
    b = base + nxt.astype(np.uint32)[None, :]
    c, d = a + np.uint32(wv), b + np.uint32(wv)
    faces = np.empty((h - 1, q, 2, 3), dtype=np.uint32)
    faces[:, :, 0, 0], faces[:, :, 0, 1], faces[:, :, 0, 2] = a, c, b
    faces[:, :, 1, 0], faces[:, :, 1, 1], faces[:, :, 1, 2] = b, c, d
    del a, b, c, d

    is_sky = np.stack([sky1, sky2], axis=-1)
    is_cut = np.stack([cut1, cut2], axis=-1)
    terrain = faces[~(is_sky | is_cut)]
    cut = faces[is_cut & ~is_sky]
    return GridTriangles(terrain, faces[is_sky] if want_sky else None, cut)


def compact(faces: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of used vertices, faces renumbered onto them): unreferenced vertices are dropped."""
    used = np.zeros(count, dtype=bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used, dtype=np.int64).astype(np.uint32) - np.uint32(1)
    return np.flatnonzero(used), remap[faces]
