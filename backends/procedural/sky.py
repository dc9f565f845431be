"""The sky: sun and moon placed by the time of day, an analytic gradient with a glow around the
sun, noise clouds on a layer 1.8 km up with cover from the weather, and stars at night.

Directions are world unit vectors (x east, y north, z up), so every view of the world (panorama,
sphere, perspective) sees the same sky. ``Sky.light()`` gives what lights the ground: the sun's
(or moon's) direction and colour and the ambient sky colour.
"""

from __future__ import annotations

import numpy as np

from .noise import cell_hash, periodic_texture, sample_periodic
from .vocabulary import Recipe

# time -> (sun elevation, sun azimuth) in degrees (azimuth clockwise from north)
SUN_POSITION = {"dawn": (3.0, 95.0), "morning": (22.0, 115.0), "noon": (62.0, 180.0), "afternoon": (34.0, 235.0),
                "sunset": (2.0, 265.0), "dusk": (-5.0, 280.0), "night": (-35.0, 0.0)}
MOON_POSITION = (32.0, 150.0)
# time -> (zenith, horizon, horizon towards the sun)
SKY_COLOURS = {
    "dawn": ((0.22, 0.30, 0.55), (0.70, 0.62, 0.66), (1.00, 0.62, 0.38)),
    "morning": ((0.22, 0.42, 0.80), (0.68, 0.80, 0.93), (0.95, 0.90, 0.80)),
    "noon": ((0.16, 0.38, 0.82), (0.66, 0.80, 0.95), (0.85, 0.90, 0.96)),
    "afternoon": ((0.20, 0.40, 0.80), (0.70, 0.80, 0.92), (0.98, 0.90, 0.75)),
    "sunset": ((0.20, 0.22, 0.45), (0.82, 0.55, 0.45), (1.00, 0.50, 0.20)),
    "dusk": ((0.06, 0.08, 0.22), (0.40, 0.30, 0.42), (0.85, 0.42, 0.28)),
    "night": ((0.006, 0.010, 0.030), (0.030, 0.040, 0.075), (0.030, 0.040, 0.075)),
}
COVER = {"clear": 0.0, "fair": 0.28, "cloudy": 0.55, "overcast": 0.92, "stormy": 0.97}
CLOUD_ALTITUDE_M = 1800.0
CLOUD_TILE_M = 24000.0


def direction(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    return np.array([np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), np.sin(e)])


class Sky:
    def __init__(self, recipe: Recipe, rng: np.random.Generator) -> None:
        self.recipe = recipe
        self.sun = direction(*SUN_POSITION[recipe.time])
        self.moon = direction(*MOON_POSITION)
        self.night = recipe.time == "night"
        self.cover = COVER[recipe.weather]
        zenith, horizon, sunward = (np.array(c) for c in SKY_COLOURS[recipe.time])
        grey = 0.45 if recipe.weather == "stormy" else 0.75
        dull = min(1.0, self.cover * 1.05) if recipe.weather in ("overcast", "stormy") else 0.0
        light = max(SKY_COLOURS[recipe.time][1][0], 0.05) * grey
        self.zenith = zenith * (1 - dull) + light * dull * np.array([0.92, 0.95, 1.0])
        self.horizon = horizon * (1 - dull) + light * 1.15 * dull * np.array([0.95, 0.97, 1.0])
        self.sunward = sunward * (1 - dull) + light * 1.2 * dull
        self.dull = dull
        self.clouds = periodic_texture(rng, 256, 6, first=1)
        self.star_salt = int(rng.integers(1, 1 << 30))

    def light(self):
        """(direction towards the light, its colour, ambient colour) for lighting surfaces."""
        if self.night:
            return self.moon, np.array([0.16, 0.18, 0.26]), self.zenith * 4.0 + np.array([0.03, 0.035, 0.05])
        sun_up = np.clip(self.sun[2] * 4 + 0.3, 0.0, 1.0)
        warm = SKY_COLOURS[self.recipe.time][2]
        colour = np.array(warm) * 1.15 * sun_up * (1 - 0.85 * self.dull)
        ambient = (self.zenith * 0.55 + self.horizon * 0.45) * (0.85 + 0.5 * self.dull)
        return self.sun, colour, ambient

    def base(self, d: np.ndarray) -> np.ndarray:
        """The clear-air sky along unit directions d (..., 3), without clouds, stars or discs."""
        el = np.clip(d[..., 2], -1, 1)
        up = np.clip(el, 0, 1)[..., None] ** 0.45
        cos_sun = np.clip(d @ self.sun, -1, 1)[..., None]
        towards = np.clip((cos_sun + 0.2) / 1.2, 0, 1) ** 3
        horizon = self.horizon + (self.sunward - self.horizon) * towards
        sky = horizon + (self.zenith - horizon) * up
        if not self.night:
            glow = np.exp((cos_sun - 1.0) * 18.0) * (0.35 + 0.4 * (self.sun[2] < 0.2)) * (1 - 0.8 * self.dull)
            sky = sky + glow * self.sunward
        below = np.clip(-el * 6, 0, 1)[..., None]
        return sky * (1 - 0.35 * below)

    def colour(self, d: np.ndarray, eye_z: float) -> np.ndarray:
        """The full sky along unit directions d (..., 3): gradient, discs, clouds, stars."""
        sky = self.base(d)
        if self.night:
            sky = self._stars(d, sky)
            sky = self._disc(d, sky, self.moon, np.array([0.95, 0.93, 0.85]), 0.9)
        elif self.dull < 0.8:
            sky = self._disc(d, sky, self.sun, np.array([1.6, 1.45, 1.2]), 0.6)
        return self._clouds(d, sky, eye_z)

    def _disc(self, d, sky, centre, colour, radius_deg):
        cos_a = np.clip(d @ centre, -1, 1)
        angle = np.degrees(np.arccos(cos_a))
        disc = np.clip((radius_deg - angle) / 0.15, 0, 1)[..., None]
        halo = (np.exp(-angle / 2.5) * 0.25)[..., None] * (1 - self.dull)
        return sky * (1 - disc) + colour * disc + halo * colour

    def _stars(self, d, sky):
        el = np.arcsin(np.clip(d[..., 2], -1, 1))
        az = np.arctan2(d[..., 0], d[..., 1])
        cell = np.radians(0.22)
        ia = np.floor(az * np.cos(el) / cell).astype(np.int64)
        ie = np.floor(el / cell).astype(np.int64)
        h = cell_hash(ia, ie, self.star_salt)
        bright = np.clip((h - 0.985) / 0.015, 0, 1) ** 2 * (el > 0.02) * (1 - self.cover)
        return sky + bright[..., None] * np.array([0.9, 0.9, 1.0])

    def _clouds(self, d, sky, eye_z):
        if self.cover <= 0:
            return sky
        el = d[..., 2]
        ok = el > 0.01
        t = (CLOUD_ALTITUDE_M - eye_z) / np.maximum(el, 0.01)
        n = self.clouds.shape[0]
        scale = np.where(ok, t, 0.0) / CLOUD_TILE_M * n
        density = sample_periodic(self.clouds, d[..., 0] * scale, d[..., 1] * scale)
        edge = 1.0 - self.cover
        alpha = np.clip((density - edge + 0.08) / 0.22, 0, 1) * ok * np.exp(-t / 60000.0)
        alpha = np.clip(alpha * (0.6 + 0.4 * self.cover) + (self.cover > 0.9) * 0.55 * ok, 0, 1)
        _, sun_colour, ambient = self.light()
        thick = np.clip((density[..., None] - edge) * 2.5, 0, 1)  # thick cloud is darker underneath
        lit = ambient * (1.0 - 0.45 * thick) + sun_colour * 0.55 * (1 - density[..., None])
        if self.recipe.weather == "stormy":
            lit = lit * (0.75 - 0.4 * thick)
        return sky * (1 - alpha[..., None]) + lit * alpha[..., None]
