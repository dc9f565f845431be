"""Triangulating a panorama's vertex grid, with cuts at depth discontinuities.

Every quad of neighbouring pixels gives two triangles, (a, c, b) and (b, c, d), where a, b are the
quad's top-left/top-right and c, d its bottom-left/bottom-right corners: counter-clockwise as seen
from the camera at the origin, so front faces point at it.

An edge between two neighbouring pixels is CUT (a depth discontinuity) when both hold:

1. its far end is more than ``1 + threshold`` times as far as its near end, and
2. neither edge beside it (the previous and the next in the same direction) continues it: a
   neighbour continues an edge when its jump in inverse distance has the same sign and at least
   1 / ``OUTLIER`` of the size.

Rule 2 keeps smooth surfaces seen at a grazing angle: on any plane, inverse distance changes at a
constant rate down a column (and almost so along a row), so a floor receding to the horizon has
large relative steps (rule 1) that its neighbours continue; a crease (wall meets floor) is
continued by its sloped side. An object's silhouette is one big step between small ones, and
a thin object's two silhouettes jump in opposite directions, so both are cut. A triangle is cut when one of its two grid-aligned edges is; any split of a
triangle's corners into near and far crosses one of those two edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

OUTLIER = 2.0


@dataclass
class GridTriangles:
    """The triangles of a vertex grid, as faces (n, 3) uint32 with the vertices they use.

    ``terrain`` (kept surfaces) and ``sky`` (touching a sky pixel; None when not asked for) come
    compacted: ``*_vertices`` are the flat grid indices of the vertices they use, and their faces
    index into that list. ``cut`` (not sky, dropped at a discontinuity) indexes the full grid."""

    terrain: np.ndarray
    terrain_vertices: np.ndarray
    sky: Optional[np.ndarray]
    sky_vertices: Optional[np.ndarray]
    cut: np.ndarray
    horizon: Optional[np.ndarray] = None  # (n, 3) flat grid faces touching both sky and terrain


def _shifted(values: np.ndarray, axis: int, by: int, cyclic: bool, fill) -> np.ndarray:
    """``values`` moved ``by`` places along ``axis`` (the previous edge for +1, the next for -1)."""
    if cyclic:
        return np.roll(values, by, axis=axis)
    out = np.full_like(values, fill)
    n = values.shape[axis]
    if n > abs(by):
        src = [slice(None)] * values.ndim
        dst = [slice(None)] * values.ndim
        src[axis] = slice(0, n - by) if by > 0 else slice(-by, n)
        dst[axis] = slice(by, n) if by > 0 else slice(0, n + by)
        out[tuple(dst)] = values[tuple(src)]
    return out


def _cut_edges(d_from: np.ndarray, d_to: np.ndarray, axis: int, cyclic: bool, threshold: float) -> np.ndarray:
    near = np.minimum(d_from, d_to)
    far = np.maximum(d_from, d_to)
    big = far > np.float32(1.0 + threshold) * near
    with np.errstate(divide="ignore", invalid="ignore"):
        jump = np.float32(1.0) / d_to - np.float32(1.0) / d_from  # signed, in inverse distance
    limit = np.abs(jump) / np.float32(OUTLIER)
    smooth = np.zeros(jump.shape, dtype=bool)
    for by in (1, -1):  # a neighbour going the same way at a comparable rate: a continuing surface
        other = _shifted(jump, axis, by, cyclic, np.float32(0.0))
        smooth |= (other * jump > 0) & (np.abs(other) >= limit)
    return big & ~smooth


def triangulate(distance: np.ndarray, sky: np.ndarray, threshold: float, wrap: str = "none",
                want_sky: bool = True, simplify=None) -> GridTriangles:
    """Triangles over an (h, wv) grid of positive distances and sky flags.

    ``wrap``: "none" (quads stop at the last column), "shared" (the last column joins the first:
    a closed seam on shared vertices) or "duplicate" (the last column repeats the first, so the
    quads already close the circle; only the edge neighbours wrap).

    ``simplify``: optional ``(whole quads mask) -> AdaptiveCells`` (see ``_adaptive``); the quads it
    covers are replaced by its faces."""
    h, wv = distance.shape
    if wrap == "shared":
        q = wv
    else:
        q = wv - 1
    if h < 2 or q < 1:
        empty, none = np.zeros((0, 3), dtype=np.uint32), np.zeros(0, dtype=np.int64)
        return GridTriangles(empty, none, empty if want_sky else None, none if want_sky else None, empty)
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

    # Column of the right-hand corners b, d of each quad (a plain slice unless the seam is shared).
    col_b = nxt if wrap == "shared" else slice(1, q + 1)
    keep1, keep2 = ~(sky1 | cut1), ~(sky2 | cut2)
    extra = None
    if simplify is not None:
        cells = simplify(keep1 & keep2)
        keep1, keep2, extra = keep1 & ~cells.covered, keep2 & ~cells.covered, cells.faces
    terrain, terrain_vertices = _compact_faces(keep1, keep2, h, wv, q, col_b, extra)
    sky_faces = sky_vertices = None
    if want_sky:
        sky_faces, sky_vertices = _compact_faces(sky1, sky2, h, wv, q, col_b)
    cut = _sparse_faces(cut1 & ~sky1, cut2 & ~sky2, wv, nxt)
    horizon = _sparse_faces(sky1 & ~(sa & sc & sb), sky2 & ~(sb & sc & sd), wv, nxt)
    return GridTriangles(terrain, terrain_vertices, sky_faces, sky_vertices, cut, horizon)


def _sparse_faces(mask1: np.ndarray, mask2: np.ndarray, wv: int, nxt: np.ndarray) -> np.ndarray:
    """Faces (flat grid numbering) of the few triangles in the masks, without building them all."""
    out = []
    for mask, corners in ((mask1, ("a", "c", "b")), (mask2, ("b", "c", "d"))):
        i, j = np.nonzero(mask)
        a = i * wv + j
        b = i * wv + nxt[j]
        at = {"a": a, "b": b, "c": a + wv, "d": b + wv}
        out.append(np.stack([at[k] for k in corners], axis=1))
    return np.concatenate(out).astype(np.uint32)


def _faces(mask1: np.ndarray, mask2: np.ndarray, index: np.ndarray, q: int, col_b: np.ndarray):
    """Faces of the kept triangles, numbered by the (h, wv) grid ``index``."""
    # Only the band of quad rows holding kept triangles (the sky is usually a band at the top).
    rows = np.flatnonzero((mask1 | mask2).any(axis=1))
    if len(rows) == 0:
        return np.zeros((0, 3), dtype=np.uint32), None
    lo, hi = rows[0], rows[-1] + 1
    mask1, mask2, index = mask1[lo:hi], mask2[lo:hi], index[lo:hi + 1]
    a, b = index[:-1, :q], index[:-1, col_b]
    c, d = index[1:, :q], index[1:, col_b]
    faces = np.empty(a.shape + (2, 3), dtype=np.uint32)
    faces[:, :, 0, 0], faces[:, :, 0, 1], faces[:, :, 0, 2] = a, c, b
    faces[:, :, 1, 0], faces[:, :, 1, 1], faces[:, :, 1, 2] = b, c, d
    # Flattened to (triangles, 3) with a (triangles,) mask: a row gather is twice as fast.
    keep = np.stack([mask1, mask2], axis=-1).reshape(-1)
    return faces.reshape(-1, 3)[keep], keep


def _compact_faces(mask1: np.ndarray, mask2: np.ndarray, h: int, wv: int, q: int, col_b: np.ndarray,
                   extra: Optional[np.ndarray] = None):
    """(faces numbered over the used vertices only, flat grid indices of those vertices).

    A vertex is used when a kept triangle has it as a corner; finding that on the grid (four
    shifted ORs) and numbering before building the faces avoids scattering and gathering every
    corner index of millions of faces."""
    used = np.zeros((h, wv), dtype=bool)
    either = mask1 | mask2
    used[:-1, :q] |= mask1  # a
    used[1:, :q] |= either  # c
    used[:-1, col_b] |= either  # b
    used[1:, col_b] |= mask2  # d
    flat = used.reshape(-1)
    if extra is not None and len(extra):
        flat[extra.reshape(-1)] = True  # faces already numbered on the grid (merged cells)
    index = (np.cumsum(flat, dtype=np.int64) - 1).astype(np.uint32).reshape(h, wv)
    faces, _ = _faces(mask1, mask2, index, q, col_b)
    if extra is not None and len(extra):
        faces = np.concatenate([faces, index.reshape(-1)[extra]])
    return faces, np.flatnonzero(flat)
