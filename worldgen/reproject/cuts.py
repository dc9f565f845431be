"""Depth cuts of a band and the masks grown from them (where something hides what is behind it).

An edge between neighbouring pixels is a cut when its far end is more than ``1 + threshold`` times
as far as its near end and neither neighbouring edge along the same direction continues the jump
(a floor receding to the horizon has large steps that continue; a silhouette is one step among
small ones): the rule of the GLB's mesh (``exporters/_grid_mesh``), restated here on whole images.
"""

from __future__ import annotations

import numpy as np

CONTINUES = 0.5  # a neighbouring edge with at least this fraction of the jump (same sign) continues it


def _isolated(jump: np.ndarray, axis: int, wrap: bool) -> np.ndarray:
    """True where an edge's jump in inverse distance is not continued by the edge before or after it."""
    def shifted(by):
        if wrap:
            return np.roll(jump, by, axis=axis)
        out = np.zeros_like(jump)
        src = [slice(None)] * jump.ndim
        dst = [slice(None)] * jump.ndim
        n = jump.shape[axis]
        src[axis] = slice(0, n - by) if by > 0 else slice(-by, n)
        dst[axis] = slice(by, n) if by > 0 else slice(0, n + by)
        out[tuple(dst)] = jump[tuple(src)]
        return out

    isolated = np.ones(jump.shape, bool)
    for by in (1, -1):
        other = shifted(by)
        isolated &= ~((np.sign(other) == np.sign(jump)) & (np.abs(other) >= CONTINUES * np.abs(jump)))
    return isolated


def cut_edges(distance: np.ndarray, threshold: float, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """(across, down): ``across[v, u]`` cuts pixel (v, u) from (v, u + 1) (the last column from the
    first when ``wrap``; never otherwise), ``down[v, u]`` cuts (v, u) from (v + 1, u)."""
    r = np.asarray(distance, dtype=np.float64)
    right = np.roll(r, -1, axis=1)
    inv, inv_right, inv_down = 1.0 / r, 1.0 / right, 1.0 / r[1:]
    across = (np.maximum(r, right) > (1 + threshold) * np.minimum(r, right)) & _isolated(inv_right - inv, 1, wrap)
    if not wrap:
        across[:, -1] = False
    down_r = r[1:]
    down = (np.maximum(r[:-1], down_r) > (1 + threshold) * np.minimum(r[:-1], down_r)) & _isolated(
        inv_down - inv[:-1], 0, False)
    return across, down


def near_sides(distance: np.ndarray, across: np.ndarray, down: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(near, behind): pixels on the near side of a cut, and there the distance of the far side
    (the nearest a background behind them can be; 0 elsewhere)."""
    r = np.asarray(distance, dtype=np.float64)
    near = np.zeros(r.shape, bool)
    behind = np.zeros(r.shape)
    right = np.roll(r, -1, axis=1)
    for here, there, cut, shift in ((r, right, across, None), (right, r, across, "right")):
        side = cut & (here < there)
        if shift == "right":
            side = np.roll(side, 1, axis=1)
            there = np.roll(there, 1, axis=1)
        near |= side
        behind = np.where(side, np.maximum(behind, there), behind)
    top, bottom = r[:-1], r[1:]
    up_near = down & (top < bottom)
    down_near = down & (bottom < top)
    near[:-1] |= up_near
    behind[:-1] = np.where(up_near, np.maximum(behind[:-1], bottom), behind[:-1])
    near[1:] |= down_near
    behind[1:] = np.where(down_near, np.maximum(behind[1:], top), behind[1:])
    return near, behind


def reveal_radius(distance: np.ndarray, behind: np.ndarray, focal_px: float, move: float,
                  max_radius: int) -> np.ndarray:
    """Pixels of background a cut can reveal when the eye moves ``move`` metres sideways: the
    parallax between its near and far sides, ``f * move * (1 / near - 1 / far)``, at most ``max_radius``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        parallax = focal_px * move * (1.0 / np.asarray(distance, np.float64) - 1.0 / np.maximum(behind, 1e-9))
    return np.clip(np.nan_to_num(np.ceil(parallax), nan=0.0), 0, max_radius)


def grow_behind(distance: np.ndarray, near: np.ndarray, behind: np.ndarray, radius, threshold: float,
                wrap: bool) -> np.ndarray:
    """The mask of foreground pixels within ``radius`` pixels of a cut's near side (a number, or a
    per-pixel array on the near side: ``reveal_radius``), grown only over pixels nearer than the
    background they hide (so it stops at the foreground's far edge)."""
    from scipy.ndimage import grey_dilation

    r = np.asarray(distance, dtype=np.float64)
    reach = np.where(near, behind, 0.0)
    budget = np.where(near, np.broadcast_to(np.asarray(radius, dtype=np.float64), r.shape), -1.0)
    mask = near.copy()
    mode = ("nearest", "wrap") if wrap else "nearest"
    for _ in range(int(np.max(budget, initial=0))):
        spread = grey_dilation(reach, size=(3, 3), mode=mode)
        left = grey_dilation(budget, size=(3, 3), mode=mode) - 1.0
        grow = ~mask & (left >= 0) & (spread > 0) & (r * (1 + threshold) < spread)
        if not grow.any():
            break
        reach = np.where(grow, spread, reach)
        budget = np.where(grow, left, budget)
        mask |= grow
    return mask
