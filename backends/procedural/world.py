"""``ProceduralWorld``: one prompt's landscape as a 3D world that can be rendered from anywhere.

Contract (the explorable-worlds work builds on it):

- ``ProceduralWorld.from_prompt(prompt, seed)`` is deterministic: the same prompt and seed give
  the same world on every machine. ``world.recipe`` says what the words chose (and which words
  were not modelled, ``world.recipe.unknown``).
- World coordinates are metres: x east, y north, z up. The ground repeats every ``TILE_M``
  metres in x and y (it is a periodic tile), so any eye point is valid. ``world.eye`` is the
  default eye, 1.6 m above the ground; ``world.ground(x, y)`` is the ground height there.
- Every ``render_*`` returns a ``Frame``: ``rgb`` (H, W, 3) float32 in [0, 1], ``distance``
  (H, W) metres from the eye to what the pixel shows along its ray (``inf`` for the sky), and
  ``kind`` (H, W) uint8 (0 sky, 1 ground, 2 water, 3 plant).
- ``render_cylinder(width, height, eye, span_deg)``: the panorama of ``worldgen.geometry.projection``:
  column u looks at azimuth ``span * (u + 0.5) / width`` clockwise from north, row v at
  elevation ``atan((height / 2 - 0.5 - v) / f)`` with ``f = width / span_rad``.
- ``render_equirect(width, height, eye)``: the full sphere, azimuth as above over 360 degrees,
  row v at elevation ``90 - 180 (v + 0.5) / height`` degrees.
- ``render_perspective(eye, yaw_deg, pitch_deg, fov_deg, width, height)``: a pinhole view
  (horizontal field of view ``fov_deg``), yaw clockwise from north, pitch up; resampled from an
  angular grid rendered over the view's extent (colour bilinear, distance and kind nearest).
- ``terrain_mesh(eye, levels, base_cell_m)``: the ground (water as a flat surface) around the
  eye as a ``mesh.TerrainMesh``: vertices (N, 3) in world metres, vertex colours (N, 3), and one
  piece of triangles per level: square rings whose cell size doubles outwards (``base_cell_m``
  near the eye, 48 cells to a level's edge: 768 m with the defaults), stitched without cracks.
- ``plants(eye)``: the trees, palms and shrubs near an eye (kind -> positions, sizes), the same
  ones the renders draw (plants belong to the world, not to a view).
"""

from __future__ import annotations

import numpy as np

from .atmosphere import Atmosphere
from .render import MAX_DISTANCE_M, Frame, View, render
from .shading import Materials
from .sky import Sky
from .terrain import TILE_M, build_heightfield
from .vocabulary import Recipe

EYE_HEIGHT_M = 1.6


class ProceduralWorld:
    def __init__(self, recipe: Recipe, seed: int) -> None:
        self.recipe = recipe
        self.seed = int(seed)
        self.field, ground_eye = build_heightfield(recipe, self.seed)
        rng = np.random.default_rng(self.seed ^ 0x5EED)
        self.eye = (ground_eye[0], ground_eye[1], ground_eye[2] + EYE_HEIGHT_M)
        self.sky = Sky(recipe, rng)
        self.light = self.sky.light()
        self.materials = Materials(recipe, TILE_M, self.field.water_level, rng)
        floor = self.field.water_level if self.field.has_water else ground_eye[2] - 15.0
        self.atmosphere = Atmosphere(recipe, self.sky, floor)
        self.plant_kinds = _plant_kinds(recipe)
        self._occlusion = _occlusion(self.field)
        from .shadows import shadow_map

        self._sunlight = shadow_map(self.field, self.light[0]) if not self.sky.night else None

    @classmethod
    def from_prompt(cls, prompt: str, seed: int = 0) -> "ProceduralWorld":
        return cls(Recipe.from_prompt(prompt), seed)

    def ground(self, x, y) -> np.ndarray:
        return self.field.sample(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))

    def occlusion(self, x, y) -> np.ndarray:
        """Ambient light reaching the ground (0..1): less in hollows and gullies."""
        from .noise import sample_periodic

        n = self._occlusion.shape[0]
        return sample_periodic(self._occlusion, (x + TILE_M / 2) / TILE_M * n, (y + TILE_M / 2) / TILE_M * n)

    def sunlight(self, x, y) -> np.ndarray:
        """How much of the sun reaches the ground here (0 in a mountain's shadow, 1 in the open)."""
        if self._sunlight is None:
            return np.ones(np.shape(x), np.float32)
        from .shadows import sunlight

        return sunlight(self._sunlight, TILE_M, x, y)

    def _eye(self, eye):
        return self.eye if eye is None else tuple(float(v) for v in eye)

    def render_cylinder(self, width: int, height: int, eye=None, span_deg: float = 360.0) -> Frame:
        span = np.radians(span_deg)
        f = width / span
        tans = (height / 2 - 0.5 - np.arange(height)) / f
        return render(self, View(self._eye(eye), 0.0, span / width, width, tans, span_deg >= 360.0))

    def render_equirect(self, width: int, height: int, eye=None) -> Frame:
        el = np.pi / 2 - np.pi * (np.arange(height) + 0.5) / height
        return render(self, View(self._eye(eye), 0.0, 2 * np.pi / width, width, np.tan(el), True))

    def render_perspective(self, eye, yaw_deg: float, pitch_deg: float, fov_deg: float, width: int,
                           height: int) -> Frame:
        from .perspective import perspective

        return perspective(self, self._eye(eye), yaw_deg, pitch_deg, fov_deg, width, height)

    def plants(self, eye=None) -> dict:
        """kind -> ``vegetation.Plants`` (positions, heights, crown radii) within reach of the eye,
        the same plants every view of the world draws."""
        from .vegetation import scatter

        eye = self._eye(eye)
        return {kind: scatter(kind, self.field, self.materials, eye, TILE_M, self.eye[:2]) for kind in self.plant_kinds}

    def terrain_mesh(self, eye=None, levels: int = 5, base_cell_m: float = 1.0):
        from .mesh import terrain_mesh

        return terrain_mesh(self, self._eye(eye), levels, base_cell_m)

    def describe(self) -> dict:
        return dict(self.recipe.describe(), seed=self.seed, eye=[round(v, 3) for v in self.eye],
                    water_level=self.field.water_level if self.field.has_water else None,
                    max_distance_m=MAX_DISTANCE_M)


def _plant_kinds(recipe: Recipe) -> tuple:
    kinds = {"pine": ("pine", "shrub"), "broadleaf": ("broadleaf", "shrub"), "palm": ("palm", "shrub"),
             "shrub": ("shrub",), "bare": ()}[recipe.plants]
    if recipe.snow:
        kinds = tuple(k for k in kinds if k != "shrub")
    return kinds


def _occlusion(field) -> np.ndarray:
    """Ground lower than its surroundings sees less sky: 1 - (blurred height - height), scaled."""
    from scipy.ndimage import uniform_filter, zoom

    small = field.heights[::2, ::2]
    around = uniform_filter(small, size=9, mode="wrap")
    ao = np.clip(1.0 - np.maximum(around - small, 0.0) / 60.0, 0.55, 1.0)
    return zoom(ao, 2, order=1, mode="grid-wrap").astype(np.float32)
