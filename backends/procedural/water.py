"""Water: small waves, a Fresnel mix of what the water reflects and the colour of the water body,
and a sun glint. The reflected colour itself (sky, or terrain found by a mirrored march) is
computed by the renderer; this module only knows how water looks."""

from __future__ import annotations

import numpy as np

from .noise import sample_periodic

WAVE_TILE_M = 40.0
F0 = 0.02  # reflectance of water seen straight down


def wave_normals(fine: np.ndarray, x, y, strength: float) -> np.ndarray:
    """Unit normals (N, 3) of a rippled surface: the slope of a periodic texture, scaled."""
    n = fine.shape[0]
    u, v = x / WAVE_TILE_M * n, y / WAVE_TILE_M * n
    gx = sample_periodic(fine, u + 1, v) - sample_periodic(fine, u - 1, v)
    gy = sample_periodic(fine, u, v + 1) - sample_periodic(fine, u, v - 1)
    normal = np.stack([-gx * strength, -gy * strength, np.ones_like(gx)], axis=-1)
    return normal / np.linalg.norm(normal, axis=-1, keepdims=True)


def fresnel(d: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Schlick's approximation for view directions d (N, 3) meeting surfaces with these normals."""
    cos = np.clip(-(d * normal).sum(-1), 0.0, 1.0)
    return F0 + (1 - F0) * (1 - cos) ** 5


def reflect(d: np.ndarray, normal: np.ndarray) -> np.ndarray:
    r = d - 2 * (d * normal).sum(-1, keepdims=True) * normal
    r[:, 2] = np.abs(r[:, 2])  # a wave never reflects a ray back down into the water
    return r / np.linalg.norm(r, axis=-1, keepdims=True)


def body_colour(biome: str, depth_m: np.ndarray, light) -> np.ndarray:
    """What comes up out of the water: deep blue-green, turquoise over sand in the tropics."""
    _, sun, ambient = light
    deep = np.array([0.015, 0.06, 0.09]) if biome != "tropical" else np.array([0.02, 0.16, 0.24])
    shallow = np.array([0.10, 0.45, 0.45]) if biome in ("tropical",) else np.array([0.10, 0.17, 0.14])
    t = np.exp(-np.clip(depth_m, 0, None) / (4.0 if biome == "tropical" else 2.0))[:, None]
    return (deep + (shallow - deep) * t) * (ambient * 1.4 + sun * 0.6)


def glint(r: np.ndarray, light) -> np.ndarray:
    towards, colour, _ = light
    return (np.clip(r @ towards, 0, 1) ** 400 * 4.0)[:, None] * colour
