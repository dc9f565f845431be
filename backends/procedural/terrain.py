"""The world's ground: a periodic heightfield with a water level, and how it is built from a recipe.

The tile is ``TILE_M`` metres square, sampled on ``GRID`` x ``GRID`` posts, and repeats in both
directions, so a ray may march any distance and every view of the world agrees. World coordinates
are metres: x east, y north, z up; the tile's centre is (0, 0). ``Heightfield.sample`` is the one
definition of the surface (bilinear between posts); the renderer, the GLB mesh and the tests all
read the ground through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landforms import Context, carve_for_eye, shape_landform, thermal_erosion
from .vocabulary import Recipe

TILE_M = 4096.0
GRID = 512
SHAPE_GRID = 256  # landforms are shaped at this resolution (noise is the cost), then refined
NO_WATER = -1.0e4  # a water level no ground reaches down to


@dataclass
class Heightfield:
    """Ground heights (GRID, GRID) in metres, row = y, column = x, on a periodic tile."""

    heights: np.ndarray
    size_m: float
    water_level: float

    def __post_init__(self) -> None:
        self.heights = np.ascontiguousarray(self.heights, dtype=np.float32)
        n = self.heights.shape[0]
        self.cell = self.size_m / n
        gy, gx = np.gradient(np.pad(self.heights, 1, mode="wrap"), self.cell)
        self._slope = np.stack([gx[1:-1, 1:-1], gy[1:-1, 1:-1]], axis=-1).astype(np.float32)
        self._flat = self.heights.reshape(-1)

    @property
    def has_water(self) -> bool:
        return self.water_level > NO_WATER / 2

    def _corners(self, x, y):
        n = self.heights.shape[0]
        gx = (np.asarray(x, dtype=np.float64) + self.size_m / 2) / self.cell
        gy = (np.asarray(y, dtype=np.float64) + self.size_m / 2) / self.cell
        fx0, fy0 = np.floor(gx), np.floor(gy)
        fx = (gx - fx0).astype(np.float32)
        fy = (gy - fy0).astype(np.float32)
        ix = fx0.astype(np.int64) & (n - 1)
        iy = fy0.astype(np.int64) & (n - 1)
        return ix, iy, (ix + 1) & (n - 1), (iy + 1) & (n - 1), fx, fy

    def sample(self, x, y) -> np.ndarray:
        """Ground height at world (x, y): bilinear between posts, periodic."""
        ix, iy, ix1, iy1, fx, fy = self._corners(x, y)
        n = self.heights.shape[0]
        h = self._flat
        r0, r1 = iy * n, iy1 * n
        a, b = h[r0 + ix], h[r0 + ix1]
        c, d = h[r1 + ix], h[r1 + ix1]
        top = a + fx * (b - a)
        bottom = c + fx * (d - c)
        return top + fy * (bottom - top)

    def surface(self, x, y) -> np.ndarray:
        """What a ray meets: the ground, or the water where the water is higher."""
        return np.maximum(self.sample(x, y), np.float32(self.water_level))

    def normal(self, x, y) -> np.ndarray:
        """Unit ground normals (..., 3), from the slopes at the nearest post (smooth enough to light)."""
        ix, iy, ix1, iy1, fx, fy = self._corners(x, y)
        s = self._slope
        g = (s[iy, ix] * ((1 - fx) * (1 - fy))[..., None] + s[iy, ix1] * (fx * (1 - fy))[..., None]
             + s[iy1, ix] * ((1 - fx) * fy)[..., None] + s[iy1, ix1] * (fx * fy)[..., None])
        n = np.concatenate([-g, np.ones(g.shape[:-1] + (1,), np.float32)], axis=-1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    def posts(self):
        """World (x, y) of every post, each (GRID, GRID)."""
        n = self.heights.shape[0]
        axis = -self.size_m / 2 + np.arange(n) * self.cell
        return np.meshgrid(axis, axis)


def build_heightfield(recipe: Recipe, seed: int):
    """(Heightfield, eye position (x, y, z)) for a recipe: the landform shaped from noise, eroded
    where it should be, and a footing levelled where the eye stands 1.6 m above the ground."""
    rng = np.random.default_rng(seed)
    x, y = _posts(SHAPE_GRID)
    ctx = Context(x=x, y=y, tile=TILE_M, rng=rng, recipe=recipe)
    heights, water = shape_landform(ctx)
    heights = _refine(heights, rng, recipe)
    if recipe.landform in ("hills", "mountains", "valley", "fjord", "island", "coast"):
        heights = thermal_erosion(heights, TILE_M / GRID, passes=3)
    ctx = Context(x=_posts(GRID)[0], y=_posts(GRID)[1], tile=TILE_M, rng=rng, recipe=recipe)
    heights, eye_xy = carve_for_eye(ctx, heights, water)
    field = Heightfield(heights, TILE_M, water)
    ground = float(field.sample(np.array([eye_xy[0]]), np.array([eye_xy[1]]))[0])
    return field, (float(eye_xy[0]), float(eye_xy[1]), max(ground, water if field.has_water else ground))


def _posts(n: int):
    axis = (-TILE_M / 2 + np.arange(n) * (TILE_M / n)).astype(np.float32)
    return np.meshgrid(axis, axis)


def _refine(heights: np.ndarray, rng: np.random.Generator, recipe: Recipe) -> np.ndarray:
    """Cubic upsampling to the full grid plus two octaves of fine detail, rougher on mountains."""
    from scipy.ndimage import zoom

    from .noise import GradientNoise

    factor = GRID // heights.shape[0]
    fine = zoom(heights, factor, order=3, mode="grid-wrap").astype(np.float32)
    u, v = [(a + TILE_M / 2) * (2 / TILE_M) for a in _posts(GRID)]
    detail = GradientNoise(rng, 2, 9).fbm(u, v, 2, first=7)
    rough = {"mountains": 5.0, "fjord": 4.0, "valley": 2.5, "dunes": 0.3, "canyon": 1.2}.get(recipe.landform, 1.2)
    return fine + np.float32(rough) * detail
