"""Reading an image at fractional pixel coordinates: bilinear for colour, nearest for distance
(interpolating across a depth edge would invent surfaces floating between the two sides)."""

from __future__ import annotations

import numpy as np


def _wrapped(image: np.ndarray, column: np.ndarray, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """The image with one repeated column on each side when it wraps (so the seam interpolates
    between its last and first columns), and the columns shifted to match."""
    if not wrap:
        return image, column
    width = image.shape[1]
    column = np.mod(column + 0.5, width) - 0.5
    return np.concatenate([image[:, -1:], image, image[:, :1]], axis=1), column + 1.0


def inside(column: np.ndarray, row: np.ndarray, shape: tuple[int, int], wrap: bool) -> np.ndarray:
    """True where (column, row) falls on the image: within half a pixel of its outer pixel centres
    (any column when it wraps)."""
    h, w = shape
    ok = (row >= -0.5) & (row <= h - 0.5)
    if not wrap:
        ok &= (column >= -0.5) & (column <= w - 0.5)
    return ok


def bilinear(image: np.ndarray, column: np.ndarray, row: np.ndarray, wrap: bool) -> np.ndarray:
    """(..., C) bilinear samples of an (H, W, C) image (edges clamp; columns wrap if ``wrap``)."""
    src, col = _wrapped(image, column, wrap)
    h, w = src.shape[:2]
    x = np.clip(col, 0.0, w - 1.0)
    y = np.clip(row, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(x.shape, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(y.shape, np.int64)
    fx = (x - x0)[..., None] if w > 1 else np.zeros(x.shape + (1,))
    fy = (y - y0)[..., None] if h > 1 else np.zeros(y.shape + (1,))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    top = src[y0, x0] * (1 - fx) + src[y0, x1] * fx
    bottom = src[y1, x0] * (1 - fx) + src[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(image.dtype, copy=False)


def nearest(image: np.ndarray, column: np.ndarray, row: np.ndarray, wrap: bool) -> np.ndarray:
    """Nearest-pixel samples of an (H, W) or (H, W, C) image (edges clamp; columns wrap if ``wrap``)."""
    h, w = image.shape[:2]
    x = np.rint(column).astype(np.int64)
    x = np.mod(x, w) if wrap else np.clip(x, 0, w - 1)
    y = np.clip(np.rint(row).astype(np.int64), 0, h - 1)
    return image[y, x]
