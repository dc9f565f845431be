"""Landform shapes on the periodic tile: each turns noise into heights (metres) and a water level.

All shapes are functions of tile coordinates that repeat with the tile: rivers and coastlines
follow integer-frequency sine sums, radial shapes use the distance to the nearest copy of the
centre, and the noise itself is periodic (``noise.GradientNoise``). The eye stands near (0, 0);
each shape puts its feature there (the canyon's river, the fjord's shore, the island's beach).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .noise import GradientNoise
from .vocabulary import Recipe

NO_WATER = -1.0e4


@dataclass
class Context:
    x: np.ndarray  # (N, N) world x of each post, metres, centred on the tile
    y: np.ndarray
    tile: float
    rng: np.random.Generator
    recipe: Recipe
    _noises: list = field(default_factory=list)

    def noise(self, octaves: int = 8) -> GradientNoise:
        """A fresh, independent noise (base lattice: 2 cells across the tile)."""
        made = GradientNoise(self.rng, 2, octaves)
        self._noises.append(made)
        return made

    def lattice(self, x=None, y=None):
        """Tile coordinates -> base lattice units of ``noise()`` (periodic with the tile)."""
        x = self.x if x is None else x
        y = self.y if y is None else y
        return (x + self.tile / 2) * (2 / self.tile), (y + self.tile / 2) * (2 / self.tile)

    def warped(self, amount_m: float, first: int = 2):
        """Domain-warped post coordinates (lattice units): features bend like real ones do."""
        u, v = self.lattice()
        a, b = self.noise(first + 3), self.noise(first + 3)
        s = amount_m * 2 / self.tile
        return u + s * a.fbm(u, v, 3, first=first), v + s * b.fbm(u, v, 3, first=first)

    def meander_distance(self, offset_m: float, amplitude_m: float) -> np.ndarray:
        """Distance (m) from each post to a meandering line running east-west past the eye
        ``offset_m`` to its north (periodic: one line per tile)."""
        k = np.arange(1, 5)
        amp = amplitude_m / k * self.rng.uniform(0.5, 1.0, 4)
        phase = self.rng.uniform(0, 2 * np.pi, 4)
        w = 2 * np.pi * k / self.tile
        line = (amp[:, None, None] * np.sin(w[:, None, None] * self.x[None] + phase[:, None, None])).sum(0)
        line += offset_m - (amp * np.sin(phase)).sum()  # passes offset_m north of the eye at x = 0
        slope = (amp[:, None, None] * w[:, None, None] * np.cos(w[:, None, None] * self.x[None]
                                                                  + phase[:, None, None])).sum(0)
        dy = (self.y - line + self.tile / 2) % self.tile - self.tile / 2
        return np.abs(dy) / np.sqrt(1 + slope * slope)

    def radius(self, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
        dx = (self.x - cx + self.tile / 2) % self.tile - self.tile / 2
        dy = (self.y - cy + self.tile / 2) % self.tile - self.tile / 2
        return np.sqrt(dx * dx + dy * dy)


def smoothstep(a: float, b: float, x) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def terraces(h: np.ndarray, step: float, sharpness: float = 0.75) -> np.ndarray:
    """Stepped heights: flat ledges joined by steep risers (layered rock)."""
    k = np.floor(h / step)
    f = h / step - k
    return (k + smoothstep(sharpness, 1.0, f)) * step


def _hills(ctx: Context, height: float = 45.0):
    u, v = ctx.warped(250.0)
    n = ctx.noise()
    return height * n.fbm(u, v, 6, first=2) + 0.2 * height * n.fbm(u, v, 3, first=5)


def _mountains(ctx: Context, height: float, clear_m: float = 300.0):
    """Ridged ranges that rise beyond ``clear_m`` from the eye, over rolling foothills."""
    u, v = ctx.warped(400.0, first=1)
    peaks = ctx.noise().ridged(u, v, 8) ** 1.7
    ring = smoothstep(clear_m, clear_m + 1200.0, ctx.radius())
    return height * peaks * (0.25 + 0.75 * ring) + _hills(ctx, 25.0)


def _sea_floor(h: np.ndarray, land: np.ndarray, depth: float = 40.0) -> np.ndarray:
    return land * h + (1 - land) * (-depth + 0.1 * h)


def _shape_island(ctx: Context, volcanic: bool):
    u, v = ctx.warped(220.0, first=2)
    radius_w = ctx.radius() + 260.0 * ctx.noise().fbm(u, v, 4, first=2)
    land = smoothstep(760.0, 560.0, radius_w)
    beach = 2.5 + 0.015 * np.maximum(700.0 - radius_w, 0.0) ** 1.2
    h = _sea_floor(beach + _hills(ctx, 35.0) * smoothstep(620.0, 300.0, radius_w), land)
    if volcanic:
        r = ctx.radius()
        gullies = 1.0 + 0.12 * (ctx.noise().ridged(u * 3, v * 3, 4) - 0.5)  # lava-cut ribs down the cone
        h += 720.0 * np.clip(1 - r / 650.0, 0, 1) ** 1.6 * gullies - 90.0 * smoothstep(110.0, 40.0, r)
    return h, 0.0


def _shape_coast(ctx: Context):
    u, v = ctx.warped(120.0, first=2)
    wobble = 90.0 * ctx.noise().fbm(u, v, 4, first=2)
    across = ctx.tile / (2 * np.pi) * np.sin(2 * np.pi * (ctx.x - 30.0) / ctx.tile) + wobble  # > 0: sea
    land = smoothstep(25.0, -15.0, across)
    inland = np.maximum(-across, 0.0)
    rise = _hills(ctx, 40.0 if ctx.recipe.biome != "tropical" else 18.0) * smoothstep(40.0, 400.0, inland)
    return _sea_floor(1.0 + 0.03 * inland + np.abs(rise), land, depth=25.0), 0.0


def _shape_canyon(ctx: Context):
    channel = ctx.meander_distance(28.0, 260.0)
    u, v = ctx.warped(60.0, first=3)
    walls_at = np.maximum(channel + 30.0 * ctx.noise().fbm(u, v, 4, first=3), 0.0)  # ragged walls ...
    plateau = 200.0 + 14.0 * _hills(ctx, 1.0)
    wall = terraces(smoothstep(32.0, 150.0, walls_at) ** 0.8 * 210.0, 26.0, 0.8)
    h = np.minimum(plateau, wall + 2.0)
    bed = -1.5 + 0.1 * channel  # ... around an unbroken river about 40 m wide
    return h - smoothstep(40.0, 15.0, channel) * np.maximum(h - bed, 0.0), 0.4


def _shape_valley(ctx: Context, mountains: bool):
    river = ctx.meander_distance(30.0, 220.0)
    sides = _mountains(ctx, 650.0, 200.0) if mountains else _hills(ctx, 70.0) + 60.0
    h = sides * smoothstep(25.0, 600.0, river) ** 1.3 + 0.5 * _hills(ctx, 6.0)
    bed = -2.5 + 0.1 * river  # an unbroken river about 30 m wide (wider than a shaping cell)
    return h - smoothstep(40.0, 15.0, river) * np.maximum(h - bed, 0.0), -1.0


def _shape_fjord(ctx: Context):
    axis = ctx.meander_distance(200.0, 300.0)
    u, v = ctx.warped(80.0, first=3)
    axis = np.maximum(axis + 45.0 * ctx.noise().fbm(u, v, 4, first=3), 0.0)
    peaks = _mountains(ctx, 900.0, 0.0)
    cliff = smoothstep(200.0, 360.0, axis) ** 0.7
    shelf = 3.0 + 10.0 * smoothstep(170.0, 230.0, axis)  # a narrow shore ledge before the cliffs
    land = smoothstep(150.0, 175.0, axis)
    h = _sea_floor(shelf + (peaks + 120.0) * cliff, land, depth=120.0)
    return h, 0.0


def _shape_dunes(ctx: Context):
    u, v = ctx.warped(150.0, first=2)
    q = (20 * (u * ctx.tile / 2) + 7 * (v * ctx.tile / 2)) / ctx.tile  # integer wave numbers keep the tile periodic
    s = q - np.floor(q)
    crest = np.where(s < 0.78, (s / 0.78) ** 1.6, ((1 - s) / 0.22) ** 1.2)
    size = 0.6 + 0.4 * ctx.noise().fbm(u, v, 3, first=1)
    return 24.0 * crest * size + 18.0 * ctx.noise().fbm(u, v, 4, first=2), NO_WATER


def _shape_plateau(ctx: Context):
    u, v = ctx.warped(200.0, first=2)
    mesas = smoothstep(0.05, 0.25, ctx.noise().fbm(u, v, 5, first=2)) * smoothstep(150.0, 500.0, ctx.radius())
    return terraces(mesas * 190.0, 38.0, 0.6) + _hills(ctx, 6.0), NO_WATER


def shape_landform(ctx: Context):
    """(heights (N, N) float32, water level) for the recipe's landform and water."""
    r = ctx.recipe
    volcanic = r.biome == "volcanic"
    if r.landform == "island":
        h, water = _shape_island(ctx, volcanic)
    elif r.landform == "coast":
        h, water = _shape_coast(ctx)
    elif r.landform == "canyon":
        h, water = _shape_canyon(ctx)
    elif r.landform == "valley":
        h, water = _shape_valley(ctx, r.biome in ("alpine", "tundra") or r.snow)
    elif r.landform == "fjord":
        h, water = _shape_fjord(ctx)
    elif r.landform == "dunes":
        h, water = _shape_dunes(ctx)
    elif r.landform == "plateau":
        h, water = _shape_plateau(ctx)
    elif r.landform == "mountains":
        h, water = _mountains(ctx, 1100.0), NO_WATER
    else:
        h, water = _hills(ctx, 12.0 if r.landform == "plains" else 45.0), NO_WATER
    if volcanic and r.landform != "island":
        h = h + 650.0 * np.clip(1 - ctx.radius(0.0, 900.0) / 600.0, 0, 1) ** 1.6
    if r.water in ("lake", "river") and water <= NO_WATER / 2:
        h, water = _with_lake(ctx, h)
    return h.astype(np.float32), float(water)


def _with_lake(ctx: Context, h: np.ndarray):
    """A lake basin whose near shore is about 60 m north of the eye."""
    centre_y = 330.0
    bowl = np.exp(-(ctx.radius(0.0, centre_y) / 300.0) ** 2)
    h = h * (1 - 0.8 * bowl) - 40.0 * bowl
    n = h.shape[0]
    cell = ctx.tile / n
    iy, ix = int((centre_y + ctx.tile / 2) / cell) % n, n // 2
    return h, float(h[iy, ix] + 28.0)  # 28 m deep at its centre


def thermal_erosion(h: np.ndarray, cell: float, passes: int = 3, talus: float = 1.0) -> np.ndarray:
    """A few passes of thermal erosion: wherever a post stands more than ``talus`` (a slope) above
    a neighbour, part of the excess slides down to it; the tile stays periodic."""
    h = h.astype(np.float32).copy()
    limit = np.float32(talus * cell)
    for _ in range(passes):
        moved = np.zeros_like(h)
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            diff = h - np.roll(h, shift, axis=axis)
            slide = np.where(diff > limit, (diff - limit) * np.float32(0.12), np.float32(0))
            moved -= slide
            moved += np.roll(slide, -shift, axis=axis)
        h += moved
    return h


def carve_for_eye(ctx: Context, h: np.ndarray, water: float):
    """Choose where the eye stands (near the tile centre, on gentle ground, by the water when
    there is some) and level a footing 6 m across there; returns (heights, (x, y))."""
    n = h.shape[0]
    cell = ctx.tile / n
    span = int((820 if ctx.recipe.landform == "island" else 420) / cell)  # an island's shore lies ~650 m out
    c = n // 2
    win = (slice(c - span, c + span), slice(c - span, c + span))
    hh = h[win]
    gy, gx = np.gradient(hh, cell)
    slope = np.hypot(gx, gy)
    r = np.hypot(ctx.x[win], ctx.y[win])
    score = r / 400.0 + 4.0 * np.maximum(slope - 0.25, 0.0)
    if ctx.recipe.landform in ("hills", "plains", "mountains", "plateau", "dunes"):
        from scipy.ndimage import uniform_filter

        prominence = hh - uniform_filter(hh, size=int(160 / cell) | 1, mode="nearest")
        score -= np.clip(prominence, -20.0, 20.0) / 8.0  # a knoll: the view opens instead of facing a slope
    if water > NO_WATER / 2:
        from scipy.ndimage import uniform_filter

        above = hh - water
        score += np.where(above < 0.8, 50.0, 0.0) + np.maximum(above - 4.0, 0.0) / 3.0
        open_water = uniform_filter((hh < water).astype(np.float32), size=int(300 / cell) | 1, mode="nearest")
        score -= 1.5 * open_water  # a shore that looks out over the water, not into a cove
    iy, ix = np.unravel_index(np.argmin(score), score.shape)
    ex, ey = float(ctx.x[win][iy, ix]), float(ctx.y[win][iy, ix])
    level = max(float(hh[iy, ix]), water + 1.0) if water > NO_WATER / 2 else float(hh[iy, ix])
    footing = smoothstep(14.0, 5.0, ctx.radius(ex, ey))
    return (h * (1 - footing) + level * footing).astype(np.float32), (ex, ey)
