"""Rendering a view of a world: march the columns, find what each pixel shows, light it, fog it.

A ``View`` is any pixel grid whose columns are evenly spaced azimuths and whose rows are
elevations (given as tangents): the cylindrical panorama and the equirectangular sphere are both
such grids (perspective views are resampled from a sphere, see ``world.py``). ``render`` returns
the colour, the true distance along each pixel's ray (``inf`` for the sky) and what each pixel
shows (``SKY``, ``GROUND``, ``WATER``, ``PLANT``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import vegetation, water
from .march import first_hits, march, step_distances
from .shading import lit

SKY, GROUND, WATER, PLANT = 0, 1, 2, 3
MAX_DISTANCE_M = 3800.0  # rays end here (the tile repeats every 4096 m; farther would show it again)
FADE_FROM_M = 2600.0  # from here to the end of the rays, the land fades into the sky behind it


@dataclass
class View:
    eye: tuple  # (x, y, z) metres
    az0: float  # azimuth of column 0's left edge, radians clockwise from north
    daz: float  # azimuth per column
    width: int
    tans: np.ndarray  # (H,) elevation tangent of each row, top row first
    wraps: bool  # the columns close a full circle

    @property
    def azimuths(self) -> np.ndarray:
        return self.az0 + (np.arange(self.width) + 0.5) * self.daz

    def directions(self) -> np.ndarray:
        """(H, W, 3) unit ray directions."""
        az = self.azimuths
        cos_el = 1.0 / np.sqrt(1.0 + self.tans * self.tans)
        d = np.empty((len(self.tans), self.width, 3), np.float32)  # shading precision; distances stay float64
        d[..., 0] = np.sin(az)[None, :] * cos_el[:, None]
        d[..., 1] = np.cos(az)[None, :] * cos_el[:, None]
        d[..., 2] = (self.tans * cos_el)[:, None]
        return d


@dataclass
class Frame:
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    distance: np.ndarray  # (H, W) metres along the ray; inf for the sky
    kind: np.ndarray  # (H, W) uint8: SKY, GROUND, WATER, PLANT


def render(world, view: View) -> Frame:
    h, w = len(view.tans), view.width
    dirs = view.directions()
    cols = march(world.field.surface, view.eye, view.azimuths, step_distances(MAX_DISTANCE_M))
    column = np.broadcast_to(np.arange(w)[None, :], (h, w)).reshape(-1)
    tangent = np.broadcast_to(view.tans[:, None], (h, w)).reshape(-1)
    horizontal = first_hits(cols, world.field.surface, column, tangent).reshape(h, w)
    distance = horizontal * np.sqrt(1.0 + view.tans * view.tans)[:, None]
    kind = np.where(np.isfinite(horizontal), GROUND, SKY).astype(np.uint8)
    if world.field.has_water:
        points = _points(view, dirs, distance)
        wet = (kind == GROUND) & (world.field.sample(points[..., 0], points[..., 1]) < world.field.water_level - 1e-3)
        kind[wet] = WATER
    plant, distance, albedo, normal = _plants(world, view, distance)
    kind[plant] = PLANT
    points = _points(view, dirs, distance)
    rgb = np.zeros((h, w, 3))
    _shade_ground(world, view, rgb, kind == GROUND, points, dirs, distance)
    _shade_plants(world, view, rgb, kind == PLANT, albedo, normal, points, dirs, distance)
    _shade_water(world, view, rgb, kind == WATER, points, dirs, distance, cols, horizontal)
    sky = kind == SKY
    eye_z = view.eye[2]
    rgb[sky] = world.atmosphere.apply_sky(world.sky.colour(dirs[sky], eye_z), dirs[sky], eye_z)
    _fade_far(world, rgb, distance, dirs, eye_z)
    return Frame(rgb=tonemap(rgb), distance=distance, kind=kind)


def _points(view: View, dirs, distance):
    """World points (H, W, 3) the pixels show (the eye itself for the sky)."""
    return np.asarray(view.eye) + dirs * np.where(np.isfinite(distance), distance, 0.0)[..., None]


def _plants(world, view: View, distance):
    """Draw the world's plants over the ground: (plant mask, distances with the plants in,
    plant albedo (H, W, 3), plant normals (H, W, 3))."""
    h, w = distance.shape
    albedo = np.zeros((h, w, 3), np.float32)
    normal = np.zeros((h, w, 3), np.float32)
    plant_depth = np.where(np.isfinite(distance), distance, np.inf)
    for kind_name in world.plant_kinds:
        plants = vegetation.scatter(kind_name, world.field, world.materials, view.eye, world.field.size_m,
                                    world.eye[:2])
        vegetation.draw(plants, view, plant_depth, albedo, normal, world.recipe.snow,
                        vegetation.foliage_colour(kind_name, world.recipe.biome))
    plant = plant_depth < np.where(np.isfinite(distance), distance, np.inf) - 1e-6
    return plant, np.where(plant, plant_depth, distance), albedo, normal


def tonemap(rgb: np.ndarray) -> np.ndarray:
    """Exposure with a soft shoulder: bright sand and snow keep their detail instead of clipping."""
    return (1.0 - np.exp(-1.6 * np.maximum(rgb, 0.0))).astype(np.float32)


def _fade_far(world, rgb, distance, dirs, eye_z):
    """Land near the end of the rays fades into the sky behind it, so no silhouette is cut off."""
    far = np.isfinite(distance) & (distance > FADE_FROM_M)
    if far.any():
        t = np.clip((distance[far] - FADE_FROM_M) / (MAX_DISTANCE_M - FADE_FROM_M), 0, 1)[:, None]
        behind = world.atmosphere.apply_sky(world.sky.colour(dirs[far], eye_z), dirs[far], eye_z)
        rgb[far] = rgb[far] * (1 - t * t) + behind * t * t


def shade_surface(world, points, dirs, distance, eye_z: float):
    """Lit, fogged colour (N, 3) of ground at world points seen along dirs from ``distance`` away."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    n = world.field.normal(x, y)
    albedo, emission = world.materials.albedo(x, y, z, n, distance)
    colour = lit(albedo, emission, n, world.light, world.sunlight(x, y)) * world.occlusion(x, y)[:, None]
    return world.atmosphere.apply(colour, dirs, eye_z, z, distance)


def _shade_ground(world, view, rgb, mask, points, dirs, distance):
    if mask.any():
        rgb[mask] = shade_surface(world, points[mask], dirs[mask], distance[mask], view.eye[2])


def _shade_plants(world, view, rgb, mask, albedo, normal, points, dirs, distance):
    if not mask.any():
        return
    p = points[mask]
    # Leaves pass light through and face every way: bend the normals up so a crown seen against the
    # sun is not a black disc.
    bent = normal[mask] + np.array([0.0, 0.0, 0.9], np.float32)
    bent /= np.linalg.norm(bent, axis=1, keepdims=True)
    colour = lit(albedo[mask], np.zeros((len(p), 3)), bent, world.light, world.sunlight(p[:, 0], p[:, 1]))
    colour *= world.occlusion(points[mask][:, 0], points[mask][:, 1])[:, None]
    rgb[mask] = world.atmosphere.apply(colour, dirs[mask], view.eye[2], points[mask][:, 2], distance[mask])


def _shade_water(world, view, rgb, mask, points, dirs, distance, cols, horizontal):
    """Water: Fresnel mix of the reflection (a march from the eye mirrored in the water plane, or
    the sky) and the water body, plus the sun's glint; then the air in front of it."""
    if not mask.any():
        return
    level = world.field.water_level
    p, d = points[mask], dirs[mask]
    storm = 3.0 if world.recipe.weather == "stormy" else 1.0
    n = water.wave_normals(world.materials.fine, p[:, 0], p[:, 1], 0.9 * storm)
    r = water.reflect(d, n)
    ex, ey, ez = view.eye
    column = np.nonzero(mask)[1]
    start = np.full(view.width, np.inf)
    np.minimum.at(start, column, horizontal[mask])
    mirrored = (ex, ey, 2 * level - ez)

    def above_water(x, y):
        ground = world.field.sample(x, y)
        return np.where(ground > level, ground, -1.0e4)

    mcols = march(above_water, mirrored, view.azimuths, cols.dist, start=start)
    r_tan = r[:, 2] / np.maximum(np.hypot(r[:, 0], r[:, 1]), 1e-6)
    far = first_hits(mcols, above_water, column, r_tan)
    reflection = world.atmosphere.apply_sky(world.sky.colour(r, level), r, level)
    hit = np.isfinite(far)
    if hit.any():
        s, c = mcols.sin[column[hit]], mcols.cos[column[hit]]
        q = np.stack([ex + s * far[hit], ey + c * far[hit], mirrored[2] + r_tan[hit] * far[hit]], axis=-1)
        path = far[hit] * np.sqrt(1 + r_tan[hit] ** 2)
        reflection[hit] = shade_surface(world, q, r[hit], path, level)
    f = water.fresnel(d, n)[:, None]
    depth = level - world.field.sample(p[:, 0], p[:, 1])
    body = water.body_colour(world.recipe.biome, depth, world.light)
    colour = f * reflection + (1 - f) * body + water.glint(r, world.light) * (1 - world.sky.dull)
    rgb[mask] = world.atmosphere.apply(colour, d, ez, p[:, 2], distance[mask])
