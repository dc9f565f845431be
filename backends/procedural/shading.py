"""Ground materials and light: what colour the surface is where a ray meets it, and how the sun
(or moon) and the sky light it.

The albedo follows the place, not the pixel: grass or sand below, rock on steep slopes, snow
above a snow line (and on gentle slopes only), sand or shingle along the water, forest canopy
where the forest density is high, canyon walls in red layers by altitude, volcanic black rock
with glowing lava channels. Variation comes from two periodic textures sampled at the hit's
world position (a fine one for ground detail, a broad one across the tile), so every view agrees.
"""

from __future__ import annotations

import numpy as np

from .landforms import smoothstep
from .noise import periodic_texture, sample_periodic
from .vocabulary import Recipe

# biome -> ground, second ground, rock, sand by water, snow line above the water (m; None: no snow)
PALETTES = {
    "grassland": ((0.33, 0.42, 0.19), (0.46, 0.46, 0.25), (0.47, 0.45, 0.41), (0.80, 0.72, 0.52), None),
    "temperate": ((0.25, 0.37, 0.15), (0.34, 0.42, 0.19), (0.43, 0.42, 0.40), (0.62, 0.60, 0.55), None),
    "alpine": ((0.28, 0.42, 0.18), (0.40, 0.44, 0.26), (0.40, 0.40, 0.42), (0.55, 0.55, 0.53), 420.0),
    "tundra": ((0.45, 0.44, 0.33), (0.36, 0.38, 0.30), (0.40, 0.40, 0.41), (0.55, 0.55, 0.53), 45.0),
    "desert": ((0.62, 0.44, 0.26), (0.56, 0.38, 0.22), (0.52, 0.33, 0.21), (0.64, 0.48, 0.31), None),
    "canyon": ((0.60, 0.42, 0.27), (0.54, 0.37, 0.23), (0.62, 0.30, 0.17), (0.64, 0.48, 0.31), None),
    "tropical": ((0.24, 0.42, 0.14), (0.36, 0.48, 0.20), (0.40, 0.36, 0.31), (0.66, 0.54, 0.34), None),
    "volcanic": ((0.10, 0.095, 0.09), (0.30, 0.28, 0.26), (0.07, 0.065, 0.065), (0.16, 0.15, 0.15), None),
}
CANYON_LAYERS = np.array([(0.72, 0.34, 0.19), (0.80, 0.46, 0.27), (0.60, 0.27, 0.16), (0.86, 0.62, 0.42),
                          (0.68, 0.30, 0.20), (0.76, 0.40, 0.24)])
SNOW = np.array([0.93, 0.95, 0.98])
CANOPY = {"pine": (0.06, 0.14, 0.08), "broadleaf": (0.12, 0.23, 0.08), "palm": (0.14, 0.30, 0.10)}
LAVA = np.array([2.2, 0.65, 0.10])
FINE_TILE_M = 24.0
GRAIN_TILE_M = 2.5


class Materials:
    def __init__(self, recipe: Recipe, tile_m: float, water_level: float, rng: np.random.Generator) -> None:
        self.recipe = recipe
        self.tile = tile_m
        self.water = water_level
        self.fine = periodic_texture(rng, 256, 5, first=2)
        self.broad = periodic_texture(rng, 256, 5, first=1)
        self.forest = periodic_texture(rng, 256, 4, first=2)
        self.ground, self.ground2, self.rock, self.sand, snow_line = (np.array(c) if isinstance(c, tuple) else c
                                                                     for c in PALETTES[recipe.biome])
        if recipe.snow:
            snow_line = -20.0
        self.snow_line = snow_line
        self.layered = recipe.biome == "canyon" or recipe.landform in ("canyon", "plateau")
        self.shore_m = {"tropical": 4.5, "desert": 3.5, "grassland": 3.0, "canyon": 3.0}.get(recipe.biome, 2.0)

    def forest_density(self, x, y) -> np.ndarray:
        """0..1: how wooded the ground is here (vegetation scatters its trees by the same map)."""
        if self.recipe.plants in ("bare",):
            return np.zeros(np.shape(x), np.float32)
        n = self.forest.shape[0]
        v = sample_periodic(self.forest, x / self.tile * n, y / self.tile * n)
        cut = {"pine": 0.42, "broadleaf": 0.45, "palm": 0.5, "shrub": 0.5}.get(self.recipe.plants, 0.5)
        return smoothstep(cut, cut + 0.12, v)

    def albedo(self, x, y, z, normal, distance=None):
        """(albedo (N, 3), emission (N, 3)) of the ground at world points with unit normals; seen
        from ``distance`` metres or nearer, the ground also gets grain a few centimetres across."""
        n = self.fine.shape[0]
        fine = sample_periodic(self.fine, x / FINE_TILE_M * n, y / FINE_TILE_M * n)[:, None]

        broad = sample_periodic(self.broad, x / self.tile * n * 4, y / self.tile * n * 4)[:, None]
        slope = (1.0 - normal[:, 2])[:, None]
        colour = (self.ground + (self.ground2 - self.ground) * broad) * (0.8 + 0.4 * fine)
        if distance is not None:  # grain a few centimetres across, where the eye can see it
            near = smoothstep(60.0, 10.0, distance)[:, None]
            grain = sample_periodic(self.fine, x / GRAIN_TILE_M * n, y / GRAIN_TILE_M * n)[:, None]
            colour = colour * (1.0 + 1.3 * near * (grain - 0.5)) + 0.4 * near * (grain - 0.5) * (self.ground2 - self.ground)
        rock = self._rock(z, broad, fine)
        steep = smoothstep(0.12, 0.3, slope + 0.08 * (fine - 0.5))
        if self.layered:
            steep = np.maximum(steep, smoothstep(6.0, 12.0, z - self.water)[:, None])
        colour = colour + (rock - colour) * steep
        colour = self._canopy(x, y, z, slope, colour)
        colour = self._shore(z, fine, colour)
        colour = self._snow(z, slope, broad, colour)
        return colour, self._lava(x, y, z, slope)

    def _rock(self, z, broad, fine):
        if not self.layered:
            return self.rock * (0.75 + 0.5 * fine)
        layer = (z[:, None] + 7.0 * broad) / 9.0
        index = np.floor(layer).astype(np.int64) % len(CANYON_LAYERS)
        return CANYON_LAYERS[index[:, 0]] * (0.85 + 0.3 * fine)

    def _canopy(self, x, y, z, slope, colour):
        canopy = CANOPY.get(self.recipe.plants)
        if canopy is None:
            return colour
        wooded = self.forest_density(x, y)[:, None] * smoothstep(0.35, 0.2, slope)
        wooded *= smoothstep(1.5, 3.0, (z - self.water))[:, None] if self.water > -1e3 else 1.0
        if self.snow_line is not None and self.snow_line > 0:
            wooded *= smoothstep(self.snow_line, self.snow_line - 80, z)[:, None]
        return colour + (np.array(canopy) - colour) * wooded * 0.85

    def _shore(self, z, fine, colour):
        if self.water < -1e3:
            return colour
        band = smoothstep(self.shore_m, self.shore_m - 1.4, z[:, None] - self.water + 0.8 * fine)
        return colour + (self.sand * (0.9 + 0.2 * fine) - colour) * band

    def _snow(self, z, slope, broad, colour):
        if self.snow_line is None:
            return colour
        line = self.snow_line + (self.water if self.water > -1e3 else 0.0)
        cover = smoothstep(line - 25, line + 25, z[:, None] + 60 * (broad - 0.5)) * smoothstep(0.45, 0.25, slope)
        return colour + (SNOW - colour) * cover

    def _lava(self, x, y, z, slope):
        glow = np.zeros((len(z), 3), np.float32)
        if self.recipe.biome != "volcanic":
            return glow
        n = self.fine.shape[0]
        channels = sample_periodic(self.broad, x / 900.0 * n, y / 900.0 * n)
        line = 1.0 - np.abs(channels - 0.5) * 2
        lava = smoothstep(0.955, 0.99, line) * smoothstep(40.0, 140.0, z) * smoothstep(0.04, 0.15, slope[:, 0])
        crater = smoothstep(590.0, 640.0, z) * smoothstep(0.5, 0.2, slope[:, 0])
        return LAVA * np.maximum(lava * 1.3, crater)[:, None]


def lit(albedo, emission, normal, light, sunlit=None) -> np.ndarray:
    """Surface colour under the sun (or moon) and the sky: Lambert plus a hemisphere ambient;
    ``sunlit`` (N,) scales the direct light (shadows)."""
    towards, colour, ambient = light
    sun = np.clip(normal @ towards, 0.0, 1.0)[:, None]
    if sunlit is not None:
        sun = sun * sunlit[:, None]
    sky = (0.55 + 0.45 * normal[:, 2])[:, None]
    return albedo * (colour * sun * 1.4 + ambient * sky * 1.5) + emission
