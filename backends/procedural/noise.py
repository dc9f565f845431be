"""Tileable noise on the world's square tile: gradient (Perlin) noise, fractal sums, ridged noise,
domain warping, and a small hash for per-cell randomness.

Every function is periodic with the tile, so the world repeats seamlessly in both directions and
a ray can march any distance. Coordinates are in lattice units of the base octave; ``period`` is
how many base lattice cells fit across the tile.
"""

from __future__ import annotations

import numpy as np


class GradientNoise:
    """Perlin gradient noise with random unit gradients on a periodic lattice, one set per octave."""

    def __init__(self, rng: np.random.Generator, period: int, octaves: int) -> None:
        if period & (period - 1):
            raise ValueError("the lattice period must be a power of two")
        self.period = period
        angles = [rng.uniform(0, 2 * np.pi, (period << k) ** 2) for k in range(octaves)]
        # Flat float32 components: np.take on 1-D arrays is several times faster than 2-D fancy indexing.
        self.gx = [np.cos(a).astype(np.float32) for a in angles]
        self.gy = [np.sin(a).astype(np.float32) for a in angles]

    def octave(self, x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
        """One octave (lattice 2**k times finer), in about [-0.7, 0.7]."""
        p = self.period << k
        x = np.asarray(x, dtype=np.float32) * np.float32(1 << k)
        y = np.asarray(y, dtype=np.float32) * np.float32(1 << k)
        x0f, y0f = np.floor(x), np.floor(y)
        fx, fy = x - x0f, y - y0f
        x0 = x0f.astype(np.int32) & (p - 1)
        row0 = (y0f.astype(np.int32) & (p - 1)) * p
        x1 = (x0 + 1) & (p - 1)
        row1 = (row0 + p) & (p * p - 1)
        gx, gy = self.gx[k], self.gy[k]

        def corner(index, dx, dy):
            return gx.take(index) * dx + gy.take(index) * dy

        u = fx * fx * fx * (fx * (fx * 6 - 15) + 10)
        v = fy * fy * fy * (fy * (fy * 6 - 15) + 10)
        fx1, fy1 = fx - 1, fy - 1
        n00 = corner(row0 + x0, fx, fy)
        bottom = n00 + u * (corner(row0 + x1, fx1, fy) - n00)
        n01 = corner(row1 + x0, fx, fy1)
        top = n01 + u * (corner(row1 + x1, fx1, fy1) - n01)
        return bottom + v * (top - bottom)

    def fbm(self, x, y, octaves: int, gain: float = 0.5, first: int = 0) -> np.ndarray:
        """Fractal sum of octaves ``first .. first+octaves-1``, normalised to about [-1, 1]."""
        total, amp, norm = 0.0, 1.0, 0.0
        for k in range(first, first + octaves):
            total = total + amp * self.octave(x, y, k)
            norm += amp
            amp *= gain
        return total * (1.4 / norm)

    def ridged(self, x, y, octaves: int, gain: float = 0.5) -> np.ndarray:
        """Ridged multifractal in [0, 1]: sharp crests where the noise crosses zero; each octave is
        weighted by the previous one so the detail gathers on the ridges, as erosion would leave it."""
        total, amp, norm = 0.0, 1.0, 0.0
        weight = 1.0
        for k in range(octaves):
            ridge = (1.0 - np.abs(self.octave(x, y, k)) * 1.42) ** 2
            total = total + amp * ridge * weight
            weight = np.clip(ridge * 1.6, 0.0, 1.0)
            norm += amp
            amp *= gain
        return total / norm


def cell_hash(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic uniform value in [0, 1) per integer cell (a 32-bit integer mix)."""
    h = (ix.astype(np.uint64) * np.uint64(0x9E3779B1) ^ iy.astype(np.uint64) * np.uint64(0x85EBCA77)
         ^ np.uint64(salt * 0xC2B2AE3D & 0xFFFFFFFF))
    h &= np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    return (h.astype(np.float64) / 4294967296.0).astype(np.float32)


def sample_periodic(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample of a square periodic texture (n, n) at texel coordinates (u, v)."""
    n = texture.shape[0]
    u0f, v0f = np.floor(u), np.floor(v)
    fu = (u - u0f).astype(np.float32)
    fv = (v - v0f).astype(np.float32)
    u0 = u0f.astype(np.int64) & (n - 1)
    v0 = v0f.astype(np.int64) & (n - 1)
    u1, v1 = (u0 + 1) & (n - 1), (v0 + 1) & (n - 1)
    flat = texture.reshape(-1)
    top = flat[v0 * n + u0] * (1 - fu) + flat[v0 * n + u1] * fu
    bottom = flat[v1 * n + u0] * (1 - fu) + flat[v1 * n + u1] * fu
    return top * (1 - fv) + bottom * fv


def periodic_texture(rng: np.random.Generator, size: int = 256, octaves: int = 5, first: int = 1) -> np.ndarray:
    """A (size, size) periodic fractal texture in about [0, 1]."""
    u, v = np.meshgrid(np.arange(size) * (2.0 / size), np.arange(size) * (2.0 / size))
    noise = GradientNoise(rng, 2, first + octaves)
    return (0.5 + 0.5 * noise.fbm(u, v, octaves, first=first)).astype(np.float32)
