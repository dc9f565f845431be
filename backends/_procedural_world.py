"""The world model behind the procedural backend: a prompt's words -> layers -> pixels.

Everything is vectorised numpy so a 2048x512 panorama takes well under a second. Terrain height
profiles are sums of integer-frequency sinusoids in azimuth, so a 360-degree world wraps without a
seam; every random choice comes from one seeded generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from worldgen.geometry.projection import CylindricalProjection

from .procedural import EYE_HEIGHT_M, FAR_M, NEAR_M

# Sky palettes: zenith, horizon, haze (aerial perspective), light level.
PALETTES = {
    "day": ((0.24, 0.45, 0.85), (0.74, 0.85, 0.96), (0.78, 0.85, 0.93), 1.0),
    "dawn": ((0.33, 0.42, 0.72), (1.00, 0.74, 0.55), (0.93, 0.80, 0.72), 0.85),
    "sunset": ((0.18, 0.18, 0.45), (1.00, 0.52, 0.28), (0.88, 0.60, 0.46), 0.7),
    "night": ((0.02, 0.03, 0.08), (0.08, 0.10, 0.20), (0.10, 0.12, 0.20), 0.25),
}
TIME_WORDS = {
    "dawn": "dawn", "sunrise": "dawn", "morning": "dawn",
    "sunset": "sunset", "dusk": "sunset", "evening": "sunset", "golden": "sunset",
    "night": "night", "midnight": "night", "moon": "night", "moonlit": "night", "stars": "night", "starry": "night",
}
MIST_WORDS = {"mist", "misty", "fog", "foggy", "haze", "hazy", "mists"}
TERRAIN_WORDS = {
    "mountains": {"mountain", "mountains", "alps", "peaks", "peak", "fjord", "fjords", "cliffs", "cliff", "volcano", "canyon"},
    "hills": {"hill", "hills", "valley", "meadow", "meadows", "countryside", "plains", "field", "fields"},
    "dunes": {"dune", "dunes", "desert", "sahara", "sand", "sandy"},
    "water": {"sea", "ocean", "lake", "fjord", "fjords", "water", "bay", "river", "coast", "beach", "harbor", "harbour"},
    "snow": {"snow", "snowy", "winter", "glacier", "ice", "icy", "arctic", "frozen"},
    "forest": {"forest", "forests", "trees", "woods", "pine", "pines", "jungle", "woodland"},
}
ROCK = np.array([0.42, 0.43, 0.47])
GRASS = np.array([0.30, 0.45, 0.20])
SAND = np.array([0.82, 0.68, 0.45])
SNOW = np.array([0.93, 0.95, 0.98])
FOLIAGE = np.array([0.12, 0.26, 0.12])
WATER = np.array([0.10, 0.22, 0.32])


@dataclass(frozen=True)
class Layer:
    distance: float  # metres from the camera axis
    low: float  # height range of the profile above the ground, metres
    high: float
    style: str  # "ridged", "rolling", "smooth", "trees"
    colour: tuple


@dataclass(frozen=True)
class Recipe:
    time_of_day: str = "day"
    mist: float = 0.0
    terrain: frozenset = field(default_factory=frozenset)

    @classmethod
    def from_prompt(cls, prompt: str) -> "Recipe":
        words = set(re.findall(r"[a-z]+", prompt.lower()))
        time = next((TIME_WORDS[w] for w in re.findall(r"[a-z]+", prompt.lower()) if w in TIME_WORDS), "day")
        terrain = frozenset(name for name, vocab in TERRAIN_WORDS.items() if words & vocab)
        if not terrain - {"snow", "water"}:
            terrain = terrain | {"hills"}  # something must stand on the horizon
        return cls(time_of_day=time, mist=0.6 if words & MIST_WORDS else 0.0, terrain=terrain)

    @property
    def ground(self) -> np.ndarray:
        if "snow" in self.terrain:
            return SNOW
        if "dunes" in self.terrain:
            return SAND
        return GRASS

    def layers(self) -> list[Layer]:
        """Far to near, so nearer layers paint over farther ones."""
        t = self.terrain
        snowy = "snow" in t
        out = []
        if "mountains" in t:
            out += [Layer(650.0, 90.0, 260.0, "ridged", tuple(ROCK * 0.9)),
                    Layer(320.0, 30.0, 110.0, "ridged", tuple(SNOW * 0.9 if snowy else ROCK))]
        if "hills" in t:
            out += [Layer(180.0, 8.0, 28.0, "rolling", tuple(SNOW * 0.95 if snowy else GRASS * 0.9)),
                    Layer(90.0, 3.0, 11.0, "rolling", tuple(SNOW if snowy else GRASS))]
        if "dunes" in t:
            out += [Layer(140.0, 6.0, 18.0, "smooth", tuple(SAND * 0.95)), Layer(55.0, 2.0, 6.0, "smooth", tuple(SAND))]
        if "forest" in t:
            out += [Layer(45.0, 1.0, 17.0, "trees", tuple(FOLIAGE * (1.4 if snowy else 1.0)))]
        return sorted(out, key=lambda layer: -layer.distance)


def _profile(theta: np.ndarray, span: float, rng: np.random.Generator, style: str) -> np.ndarray:
    """A height profile in [0, 1] over azimuth; integer frequencies per full turn keep 360 deg seamless."""
    base = 2 * np.pi / span if span < 2 * np.pi else 1.0  # partial spans: frequencies per span
    if style == "trees":
        n = max(8, int(60 * span / np.pi))
        centres = rng.uniform(0, span, n)
        widths = rng.uniform(0.012, 0.035, n)
        heights = rng.uniform(0.5, 1.0, n)
        delta = np.abs(theta[:, None] - centres[None, :])
        if span >= 2 * np.pi - 1e-9:
            delta = np.minimum(delta, 2 * np.pi - delta)
        cones = heights * np.clip(1.0 - delta / widths, 0.0, None)
        return np.maximum(cones.max(axis=1), 0.08)
    octaves = {"ridged": 24, "rolling": 10, "smooth": 6}[style]
    k = np.arange(1, octaves + 1)
    amp = rng.uniform(0.5, 1.0, octaves) / k ** (1.1 if style == "ridged" else 1.6)
    phase = rng.uniform(0, 2 * np.pi, octaves)
    wave = (amp[:, None] * np.sin(k[:, None] * theta[None, :] * base + phase[:, None])).sum(axis=0)
    if style == "ridged":
        wave = -np.abs(wave)  # sharp crests
    wave -= wave.min()
    return wave / max(wave.max(), 1e-9)


def _value_noise(height: int, width: int, cells: tuple[int, int], rng: np.random.Generator, wrap: bool) -> np.ndarray:
    """Smooth noise in [0, 1] by bilinear interpolation of a coarse random grid; wraps in x when asked."""
    gy, gx = cells
    grid = rng.random((gy + 1, gx + (0 if wrap else 1)))
    y = np.linspace(0, gy, height, endpoint=False)[:, None] + 0.5 * gy / height
    x = (np.arange(width) + 0.5) / width * gx
    y0 = np.floor(y).astype(int)
    x0 = np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    y1 = np.minimum(y0 + 1, gy)
    x1 = (x0 + 1) % grid.shape[1] if wrap else np.minimum(x0 + 1, gx)
    x0 = x0 % grid.shape[1]
    top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
    bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def render(recipe: Recipe, width: int, height: int, span_deg: float, seed: int):
    """Return (image (H, W, 3) float32 in [0, 1], distance (H, W) metres, projection)."""
    projection = CylindricalProjection(width, height, span_deg)
    rng = np.random.default_rng(seed)
    span = np.radians(span_deg)
    wrap = projection.full_circle
    f = projection.focal_px
    centre = height / 2 - 0.5
    rows = np.arange(height, dtype=np.float64)[:, None]
    theta = span * (np.arange(width) + 0.5) / width

    zenith, horizon, haze, light = (np.array(c) if isinstance(c, tuple) else c for c in PALETTES[recipe.time_of_day])
    horizon = horizon * (1 - recipe.mist) + haze * recipe.mist
    visibility = 2500.0 * (1 - recipe.mist) + 250.0 * recipe.mist

    # Sky: a gradient by elevation, a sun (or moon) glow at a seeded azimuth, stars at night.
    elevation = np.arctan2(centre - rows, f)
    t = np.clip(elevation / np.radians(50), 0.0, 1.0)[..., None]
    sky = np.broadcast_to(horizon * (1 - t) + zenith * t, (height, width, 3)).copy()
    sun_az = rng.uniform(0, span)
    dist_az = np.abs(theta - sun_az)
    if wrap:
        dist_az = np.minimum(dist_az, 2 * np.pi - dist_az)
    glow = np.exp(-(dist_az[None, :] ** 2) / 0.08 - np.clip(elevation, 0, None) ** 2 / 0.05)[..., None]
    sun_colour = np.array([1.0, 0.85, 0.6]) if recipe.time_of_day != "night" else np.array([0.6, 0.65, 0.8])
    sky = sky + glow * sun_colour * (0.5 if recipe.time_of_day != "day" else 0.25)
    if recipe.time_of_day == "night":
        stars = (rng.random((height, width)) > 0.998) & (rows < centre)
        sky[stars] = 0.9

    # Ground: the plane y = 0 seen from eye height; distance grows towards the horizon row.
    below = rows > centre
    ground_r = np.where(below, EYE_HEIGHT_M * f / np.maximum(rows - centre, 1e-6), FAR_M)
    ground_r = np.clip(ground_r, NEAR_M, 0.9 * FAR_M)
    texture = _value_noise(height, width, (max(2, height // 16), max(4, width // 16)), rng, wrap)
    fine = _value_noise(height, width, (max(2, height // 4), max(4, width // 4)), rng, wrap)
    texture = 0.6 * texture + 0.4 * fine
    ground = recipe.ground * (0.88 + 0.2 * texture[..., None]) * light
    if "water" in recipe.terrain:
        shore = 8.0
        water = (ground_r > shore)[..., None]
        reflection = sky[np.clip((2 * centre - rows).astype(int), 0, height - 1).ravel()][:, :, :]
        ripples = 0.85 + 0.15 * texture[..., None]
        ground = np.where(water, (WATER * 0.6 + reflection * 0.4) * ripples * light, ground)
    distance = np.where(below, ground_r, FAR_M) * np.ones((1, width))
    image = np.where(below[..., None], ground, sky)

    for layer in recipe.layers():
        profile = _profile(theta, span, rng, layer.style)
        top_height = layer.low + (layer.high - layer.low) * profile
        layer_r = layer.distance * (1.0 + 0.06 * _profile(theta, span, rng, "smooth"))
        v_top = centre - f * (top_height - EYE_HEIGHT_M) / layer_r
        v_base = centre + f * EYE_HEIGHT_M / layer_r
        mask = (rows >= np.floor(v_top)) & (rows <= v_base) & (layer_r[None, :] < distance)
        distance = np.where(mask, layer_r[None, :], distance)
        # Shading: slopes facing the sun are lit; height above ground darkens toward the base.
        slope = np.gradient(top_height) / np.maximum(layer_r * span / width, 1e-6)
        lit = 0.75 + 0.25 * np.tanh(2.0 * slope * np.sin(theta - sun_az))
        y_world = EYE_HEIGHT_M + layer_r[None, :] * (centre - rows) / f
        colour = np.array(layer.colour) * lit[None, :, None] * (0.85 + 0.3 * texture[..., None]) * light
        if layer.style == "ridged":
            snowline = layer.low + 0.7 * (layer.high - layer.low)
            caps = (y_world > snowline)[..., None]
            colour = np.where(caps, SNOW * light * lit[None, :, None], colour)
        fog = (1.0 - np.exp(-layer_r / visibility))[None, :, None]
        colour = colour * (1 - fog) + haze * light * fog
        coverage = np.clip(rows - v_top[None, :] + 0.5, 0.0, 1.0)[..., None] * mask[..., None]
        image = image * (1 - coverage) + colour * coverage

    ground_fog = np.where(below, 1.0 - np.exp(-ground_r / visibility), 0.0)[..., None]
    image = np.where(below[..., None] & (distance[..., None] == ground_r[..., None]),
                     image * (1 - ground_fog) + haze * light * ground_fog, image)
    return np.clip(image, 0.0, 1.0).astype(np.float32), distance.astype(np.float32), projection
