"""Sun shadows on the ground: for every post of a coarse copy of the heightfield, whether the
terrain towards the sun rises above the sun's elevation (a soft edge, so penumbrae are smooth).

The map is periodic like the ground, so every view reads the same shadows; plants cast none.
"""

from __future__ import annotations

import numpy as np

from .noise import sample_periodic

SHADOW_GRID = 256
STEPS = 40


def shadow_map(field, sun: np.ndarray) -> np.ndarray:
    """(SHADOW_GRID, SHADOW_GRID) sunlight fraction in [0, 1] (1 = lit) for a sun direction."""
    n = SHADOW_GRID
    if sun[2] <= 0.0 or sun[2] > 0.8:  # below the horizon (lit by the moon, no shadows) or high overhead
        return np.ones((n, n), np.float32)
    step = field.size_m / n
    axis = -field.size_m / 2 + (np.arange(n) + 0.0) * step
    x, y = np.meshgrid(axis, axis)
    base = field.sample(x, y)
    flat = np.hypot(sun[0], sun[1])
    dx, dy, rise = sun[0] / flat, sun[1] / flat, sun[2] / flat
    dist = 6.0 * (1.16 ** np.arange(STEPS))  # 6 m .. about 2.5 km
    light = np.ones((n, n), np.float32)
    for d in dist:
        above = field.sample(x + dx * d, y + dy * d) - (base + rise * d)
        light = np.minimum(light, np.clip(1.0 - above / (0.04 * d + 2.0), 0.0, 1.0))
    return light


def sunlight(light_map: np.ndarray, size_m: float, x, y) -> np.ndarray:
    n = light_map.shape[0]
    return sample_periodic(light_map, (x + size_m / 2) / size_m * n, (y + size_m / 2) / size_m * n)
