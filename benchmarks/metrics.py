"""Quality numbers the speed benchmark reports next to its timings, so a faster recipe cannot quietly
be a worse one.

- ``wrap_seam_ratio``: how different the panorama's last and first columns are (they are neighbours
  on the cylinder), relative to the median difference of ordinary neighbouring columns. About 1 or
  below: the wrap is an interior column like any other; far above 1: a visible seam.
- ``layout_agreement``: Pearson correlation of two results after average-pooling away detail. Two
  runs from the same noise that follow the same probability-flow ODE (DDIM at 50 steps, DPM-Solver++
  at 20) should land on the same coarse layout; results from different noise should not. With
  random weights this measures how closely a faster recipe follows the published one's trajectory,
  not how good a picture is.
"""

from __future__ import annotations

import numpy as np


def _channels_last(array) -> np.ndarray:
    """(H, W, C) numpy from a numpy (H, W[, C]) array or a torch (B, C, H, W) / (C, H, W) tensor."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
        if array.ndim == 4:
            array = array[0]
        return np.moveaxis(array, 0, -1).astype(np.float64)
    array = np.asarray(array, dtype=np.float64)
    return array[..., None] if array.ndim == 2 else array


def wrap_seam_ratio(array) -> float:
    """Mean |last column - first column| over the median of the mean |column i+1 - column i|."""
    x = _channels_last(array)
    jump = np.abs(x[:, 0] - x[:, -1]).mean()
    neighbours = np.abs(np.diff(x, axis=1)).mean(axis=(0, 2))
    typical = float(np.median(neighbours))
    return float(jump / typical) if typical > 0 else float("inf") if jump > 0 else 1.0


def _pool(x: np.ndarray, size: int) -> np.ndarray:
    h, w, c = x.shape
    size = max(1, min(size, h, w))
    h2, w2 = h // size, w // size
    return x[:h2 * size, :w2 * size].reshape(h2, size, w2, size, c).mean(axis=(1, 3))


def layout_agreement(a, b, pool: int = 8) -> float:
    """Correlation of the average-pooled arrays (1: the same coarse layout, ~0: unrelated)."""
    x, y = _pool(_channels_last(a), pool), _pool(_channels_last(b), pool)
    x = x - x.mean(axis=(0, 1))
    y = y - y.mean(axis=(0, 1))
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0
