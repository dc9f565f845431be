"""Aerial perspective and fog: far things fade towards the colour of the air.

Two media: a thin haze everywhere (thicker when hazy or stormy), and, when the prompt is misty or
foggy, a ground mist whose density falls off exponentially above the water (or the valley floor),
so valleys fill and peaks rise out of it. Optical depth along a ray is integrated in closed form.
"""

from __future__ import annotations

import numpy as np

from .vocabulary import Recipe

HAZE_SCALE_M = 1500.0


class Atmosphere:
    def __init__(self, recipe: Recipe, sky, floor_z: float) -> None:
        self.sky = sky
        weather_haze = {"clear": 1 / 30000, "fair": 1 / 20000, "cloudy": 1 / 14000, "overcast": 1 / 8000,
                        "stormy": 1 / 4000}[recipe.weather]
        self.haze = weather_haze + (1 / 3500 if 0 < recipe.mist < 0.5 else 0.0)
        self.mist = {0.0: 0.0}.get(recipe.mist, recipe.mist ** 2 / 90.0)
        self.mist_scale = 40.0 + 120.0 * recipe.mist
        self.floor = floor_z
        self.night = recipe.time == "night"

    def _mist_density(self, z):
        return np.exp(-np.maximum(z - self.floor, 0.0) / self.mist_scale)

    def transmittance(self, eye_z: float, z, dist) -> np.ndarray:
        """How much of a surface at height z, ``dist`` metres along the ray, reaches the eye."""
        tau = self.haze * dist * np.exp(-np.maximum(np.minimum(z, eye_z), 0) / HAZE_SCALE_M * 0.3)
        if self.mist > 0:
            dz = np.asarray(z - eye_z, dtype=np.float64)
            r0, r1 = self._mist_density(eye_z), self._mist_density(z)
            flat = np.abs(dz) < 1e-3
            mean = np.where(flat, r0, (r0 - r1) * self.mist_scale / np.where(flat, 1.0, dz))
            tau = tau + self.mist * dist * np.abs(mean)
        return np.exp(-tau)

    def colour(self, d: np.ndarray) -> np.ndarray:
        """The air's colour looking along d: the sky just above the horizon that way (sunlit
        haze glows towards the sun), paler in mist. It depends only on the angle between d's
        compass direction and the sun's, so it is read from a table of 256 angles."""
        if not hasattr(self, "_table"):
            angle = np.linspace(0, np.pi, 256)
            sun = self.sky.sun[:2] / max(np.linalg.norm(self.sky.sun[:2]), 1e-9)
            rot = np.stack([np.cos(angle), np.sin(angle)], 1)
            flat = np.stack([rot[:, 0] * sun[0] - rot[:, 1] * sun[1], rot[:, 0] * sun[1] + rot[:, 1] * sun[0],
                             np.full(256, 0.04)], 1)
            air = self.sky.base(flat / np.linalg.norm(flat, axis=1, keepdims=True))
            if self.mist > 0:
                _, _, ambient = self.sky.light()
                pale = np.clip(ambient * 1.25 + 0.08 * (not self.night), 0, 1)
                air = air * 0.5 + pale * 0.5
            self._table = air
        sun = self.sky.sun[:2] / max(np.linalg.norm(self.sky.sun[:2]), 1e-9)
        cos = (d[..., 0] * sun[0] + d[..., 1] * sun[1]) / np.maximum(np.hypot(d[..., 0], d[..., 1]), 1e-9)
        index = np.rint(np.arccos(np.clip(cos, -1, 1)) * (255 / np.pi)).astype(np.int64)
        return self._table[index]

    def apply(self, colour, d, eye_z: float, z, dist):
        t = self.transmittance(eye_z, z, dist)[:, None]
        return colour * t + self.colour(d) * (1 - t)

    def apply_sky(self, colour, d, eye_z: float):
        """Haze and mist in front of the sky (an infinitely long ray through layers of finite height)."""
        up = np.maximum(d[..., 2], 0.03)
        tau = self.haze * HAZE_SCALE_M / up * 0.6
        if self.mist > 0:
            tau = tau + self.mist * self.mist_scale * self._mist_density(eye_z) / up
        t = np.exp(-tau)[..., None]
        return colour * t + self.colour(d) * (1 - t)
