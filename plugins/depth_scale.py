"""The scale depth previews are drawn on: logarithmic in disparity, stretched per image.

Disparity falls as 1 / distance, so a linear map spends the whole colour range on the first few
metres and paints everything beyond ~20 m the same dark blue. On a log scale each doubling of
distance takes the same step of colour: a 5 m cabin, a 50 m tree line and a 500 m ridge stay apart.
"""

from __future__ import annotations

import numpy as np

# Disparities at or below this are sky (no surface); they take the scale's bottom.
SKY_DISPARITY = 1e-6
# Surfaces start a little above the bottom, so the farthest one stays apart from the sky.
SURFACE_FLOOR = 0.06
# The farthest surface drawn is at most this many times as far as the nearest: beyond that, one colour.
MAX_RANGE = 1e4


def log_scale(disparity: np.ndarray) -> np.ndarray:
    """Disparity (any positive scale, near = high) -> [0, 1]: 1 at the nearest surface, falling by the
    same step per doubling of distance down to ``SURFACE_FLOOR`` at the farthest; sky 0."""
    d = np.nan_to_num(np.asarray(disparity, dtype=np.float64), nan=0.0, posinf=0.0)
    surface = d > SKY_DISPARITY
    out = np.zeros(d.shape, dtype=np.float32)
    if not surface.any():
        return out
    hi = float(d[surface].max())
    lo = max(float(d[surface].min()), hi / MAX_RANGE)
    if hi <= lo * (1 + 1e-9):
        out[surface] = 1.0
        return out
    t = np.log(np.clip(d[surface], lo, hi) / lo) / np.log(hi / lo)
    out[surface] = SURFACE_FLOOR + (1.0 - SURFACE_FLOOR) * t
    return out
