"""Trees, palms and shrubs: scattered over the ground by the forest density map, drawn into a
view with a depth test, so each plant pixel's distance is the distance to the plant.

Plants are a property of the world, not of a view: they sit on a jittered grid whose cells are
hashed in tile coordinates, so every eye sees the same plants in the same places. Each is drawn
as a solid of revolution (a tiered cone, a round crown on a trunk, a palm's fronds on a leaning
trunk, a shrub) in the view's angular pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import cell_hash

# kind -> (grid spacing m, height range m, crown radius / height, reach m)
KINDS = {"pine": (6.4, (7.0, 17.0), 0.28, 260.0), "broadleaf": (8.0, (6.0, 13.0), 0.38, 260.0),
         "palm": (12.8, (6.0, 10.0), 0.35, 200.0), "shrub": (6.4, (0.4, 1.1), 0.9, 50.0)}
CLEARING_M = 24.0  # no tree stands closer to the eye than this (shrubs may)
FOLIAGE = {"pine": (0.10, 0.22, 0.12), "broadleaf": (0.18, 0.32, 0.10), "palm": (0.22, 0.42, 0.12),
           "shrub": (0.30, 0.38, 0.15)}
TRUNK = np.array([0.26, 0.19, 0.13])
ARID_SHRUB = (0.44, 0.40, 0.25)  # dry scrub: sage and straw, not green


@dataclass
class Plants:
    kind: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray  # ground under each plant
    height: np.ndarray
    radius: np.ndarray
    tint: np.ndarray  # per plant colour variation
    lean: np.ndarray  # palms: sideways lean (m at the top)


def scatter(kind: str, field, materials, eye, tile: float, clearing=(0.0, 0.0)) -> Plants:
    """The plants of ``kind`` within reach of the eye, far to near. No tree stands within
    ``CLEARING_M`` of ``clearing`` (the world's own eye: it stands in a clearing, whatever the view)."""
    spacing, (h_lo, h_hi), crown, reach = KINDS[kind]
    cells = int(round(tile / spacing))
    spacing = tile / cells
    ex, ey, _ = eye
    ix, iy = np.meshgrid(np.arange(np.floor((ex - reach) / spacing), np.ceil((ex + reach) / spacing)),
                         np.arange(np.floor((ey - reach) / spacing), np.ceil((ey + reach) / spacing)))
    ix, iy = ix.ravel().astype(np.int64), iy.ravel().astype(np.int64)
    wx, wy = ix % cells, iy % cells
    x = (ix + 0.15 + 0.7 * cell_hash(wx, wy, 1)) * spacing
    y = (iy + 0.15 + 0.7 * cell_hash(wx, wy, 2)) * spacing
    z = field.sample(x, y)
    normal = field.normal(x, y)
    keep = cell_hash(wx, wy, 3) < _density(kind, materials, x, y, z, normal)
    dist = np.hypot(x - ex, y - ey)
    keep &= (dist < reach) & (dist > 1.0)
    keep &= np.hypot(x - clearing[0], y - clearing[1]) > (6.0 if kind == "shrub" else CLEARING_M)
    x, y, z, wx, wy, dist = x[keep], y[keep], z[keep], wx[keep], wy[keep], dist[keep]
    height = h_lo + (h_hi - h_lo) * cell_hash(wx, wy, 4)
    order = np.argsort(-dist)
    lean = (cell_hash(wx, wy, 6) - 0.5) * 2.5 * (kind == "palm")
    return Plants(kind, x[order], y[order], z[order], height[order], (height * crown)[order],
                  (0.8 + 0.4 * cell_hash(wx, wy, 5))[order], lean[order])


def _density(kind, materials, x, y, z, normal):
    water = materials.water
    base = materials.forest_density(x, y) * 0.9 + 0.05
    gentle = normal[:, 2] > 0.85
    above = z > water + (0.6 if kind == "palm" else 1.5)
    if kind == "palm":
        base = np.where(z < water + 14.0, 0.55, base * 0.5)
    if kind == "shrub":
        base = 0.06 + 0.2 * base
    line = materials.snow_line
    if line is not None and line > 0 and not materials.recipe.snow:
        base = base * (z < line - 40.0)
    return base * gentle * above


def profile(kind: str, t: np.ndarray, x: np.ndarray, radius: float):
    """For heights t (0 at the ground, 1 at the top) and offsets x (m, across the view), the
    plant's half-width there (m) and whether it is trunk."""
    if kind == "pine":
        tier = 1.0 - 0.35 * ((t * 6.0) % 1.0)
        crown = np.where(t > 0.12, radius * np.clip((1.0 - t) / 0.88, 0, 1) * tier, 0.0)
        trunk_w = 0.05 * radius
    elif kind == "broadleaf":
        crown = radius * np.sqrt(np.clip(1 - ((t - 0.64) / 0.36) ** 2, 0, 1))
        trunk_w = 0.06 * radius
    elif kind == "palm":  # fronds arch out from the top and droop towards their tips
        s = np.clip(np.abs(x) / max(radius, 1e-3), 0, 1)
        frond = np.abs(t - (0.97 - 0.22 * s * s)) < 0.045 * (1.2 - s)
        gaps = np.abs(np.sin(s * 9.0 + 1.3)) > 0.25
        crown = np.where(frond & gaps | ((t > 0.9) & (s < 0.12)), radius, 0.0)
        trunk_w = 0.05 * radius
    else:
        crown = radius * np.sqrt(np.clip(1 - ((t - 0.5) / 0.5) ** 2, 0, 1))
        trunk_w = 0.0
    return crown, np.maximum(trunk_w, 0.12 * (kind != "shrub")) * (t < 0.9)


def foliage_colour(kind: str, biome: str) -> np.ndarray:
    arid = kind == "shrub" and biome in ("desert", "canyon", "volcanic")
    return np.array(ARID_SHRUB if arid else FOLIAGE[kind])


def draw(plants: Plants, view, depth: np.ndarray, albedo: np.ndarray, normal: np.ndarray, snowy: bool,
         foliage: np.ndarray) -> None:
    """Draw the plants into per-pixel buffers (H, W): a pixel takes a plant only where the plant
    is nearer than what ``depth`` already holds, so plants hide each other and the ground right."""
    ex, ey, ez = view.eye
    neg_tans = -view.tans
    width = len(view.azimuths)
    for i in range(len(plants.x)):
        dx, dy = plants.x[i] - ex, plants.y[i] - ey
        d = float(np.hypot(dx, dy))
        a = float(np.arctan2(dx, dy))
        radius, height, lean = float(plants.radius[i]), float(plants.height[i]), float(plants.lean[i])
        half = np.arctan((radius + abs(lean)) / d)
        centre = (a - view.az0) / view.daz - 0.5
        if view.wraps:
            centre %= width
        j0, j1 = int(np.floor(centre - half / view.daz)), int(np.ceil(centre + half / view.daz))
        r0 = int(np.searchsorted(neg_tans, -(plants.z[i] + height - ez) / d))
        r1 = int(np.searchsorted(neg_tans, -(plants.z[i] - ez) / d, side="right"))
        if r1 <= r0 or j1 - j0 >= width:
            continue
        cols = np.arange(j0, j1 + 1)
        if view.wraps:
            cols %= width
        else:
            cols = cols[(cols >= 0) & (cols < width)]
            if not len(cols):
                continue
        side = d * np.tan(view.azimuths[cols] - a)
        side = np.where(np.abs(side) > 4 * (radius + abs(lean)) + 1, 1e9, side)  # wrapped-around columns
        zr = ez + d * view.tans[r0:r1]
        t = ((zr - plants.z[i]) / height)[:, None]
        xs = side[None, :] - lean * t * t
        crown, trunk = profile(plants.kind, t, xs, radius)
        leaf = np.abs(xs) < crown
        inside = leaf | (np.abs(xs) < trunk)
        if not inside.any():
            continue
        depth_here = np.hypot(d - np.sqrt(np.maximum(crown * crown - xs * xs, 0.0)) * leaf, (zr - ez)[:, None])
        rows = np.arange(r0, r1)[:, None]
        near = inside & (depth_here < depth[rows, cols[None, :]])
        if not near.any():
            continue
        rr, cc = np.broadcast_to(rows, near.shape)[near], np.broadcast_to(cols[None, :], near.shape)[near]
        depth[rr, cc] = depth_here[near]
        across = np.clip(xs / np.maximum(crown, 1e-3), -1, 1)[near]
        up = np.where(leaf, np.clip((t - 0.55) * 1.6, -0.6, 0.9), 0.0)[near]
        towards = np.sqrt(np.maximum(1 - across * across, 0.0))
        n = (across[:, None] * np.array([np.cos(a), -np.sin(a), 0.0])
             - towards[:, None] * np.array([np.sin(a), np.cos(a), 0.0]) + up[:, None] * np.array([0, 0, 1.0]))
        normal[rr, cc] = n / np.linalg.norm(n, axis=-1, keepdims=True)
        colour = np.where(leaf[near][:, None], foliage * plants.tint[i], TRUNK)
        if snowy:
            colour = colour + (0.9 - colour) * (0.7 * np.clip(up * 2 + 0.3, 0, 1) * leaf[near])[:, None]
        albedo[rr, cc] = colour
