"""What a world looks like along any ray from the eye: colour, distance along the ray (metres,
``inf`` for sky) and whether the ray is known at all.

Two sources: the stored cylindrical band (rays above or below it are unknown) and a full
equirectangular sphere (``worldgen sphere``). Every view (equirect, cube map, perspective) is
rendered by asking a source about its rays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.projection import CylindricalProjection
from . import rays as R
from .sample import bilinear, inside, nearest


@dataclass
class Lookup:
    """Per-ray colour (..., 3) float32 in [0, 1], distance (...) float32 metres along the ray
    (``inf`` = sky) and known (...) bool; unknown rays have colour 0 and distance NaN."""

    color: np.ndarray
    distance: np.ndarray
    known: np.ndarray


class BandSource:
    """A cylindrical band: ``colors`` (H, W, 3), ``distance`` (H, W) horizontal metres, ``sky`` (H, W)."""

    def __init__(self, projection: CylindricalProjection, colors: np.ndarray, distance: np.ndarray,
                 sky: np.ndarray, world=None) -> None:
        self.projection = projection
        self.world = world  # the WorldGeometry it came from (settings, world_scale), when built from a snapshot
        self.colors = np.asarray(colors, dtype=np.float32)
        self.distance = np.where(sky, np.inf, np.asarray(distance, dtype=np.float32)).astype(np.float32)

    @classmethod
    def from_snapshot(cls, snapshot, overrides=None) -> "BandSource":
        from ..geometry.world import build_world

        world = build_world(snapshot, overrides=overrides)
        return cls(snapshot.projection, world.colors, world.distance, world.sky, world)

    def lookup(self, rays: np.ndarray) -> Lookup:
        proj = self.projection
        wrap = proj.full_circle
        column, row, slope = R.to_cylinder(rays, proj)
        known = inside(column, row, self.colors.shape[:2], wrap)
        color = np.where(known[..., None], bilinear(self.colors, column, row, wrap), 0.0).astype(np.float32)
        along = nearest(self.distance, column, row, wrap) * np.sqrt(1.0 + slope ** 2)
        distance = np.where(known, along, np.nan).astype(np.float32)
        return Lookup(color, distance, known)


class EquirectSource:
    """A full sphere: ``colors`` (H, W, 3), ``distance`` (H, W) metres along the ray (inf = sky),
    ``known`` (H, W) bool (False where nothing filled it yet)."""

    def __init__(self, colors: np.ndarray, distance: np.ndarray, known: np.ndarray | None = None) -> None:
        self.colors = np.asarray(colors, dtype=np.float32)
        self.distance = np.asarray(distance, dtype=np.float32)
        self.known = np.ones(self.distance.shape, bool) if known is None else np.asarray(known, bool)

    def lookup(self, rays: np.ndarray) -> Lookup:
        h, w = self.distance.shape
        column, row = R.to_equirect(rays, w, h)
        known = nearest(self.known, column, row, True)
        color = np.where(known[..., None], bilinear(self.colors, column, row, True), 0.0).astype(np.float32)
        distance = np.where(known, nearest(self.distance, column, row, True), np.nan).astype(np.float32)
        return Lookup(color, distance, known)


def render_equirect(source, width: int, yaw_deg: float = 0.0) -> Lookup:
    """The source as a 2:1 equirectangular image ``width`` pixels wide, turned by ``yaw_deg``."""
    return source.lookup(R.equirect_rays(width, width // 2, yaw_deg))


def render_perspective(source, camera: R.Camera, width: int, height: int) -> Lookup:
    return source.lookup(R.perspective_rays(camera, width, height))


def source_for(snapshot, overrides=None):
    """The snapshot's full sphere when it has one (``worldgen sphere``), else its band."""
    sphere = getattr(snapshot, "sphere", None)
    if sphere is not None:
        return EquirectSource(sphere.image, sphere.distance, sphere.known)
    return BandSource.from_snapshot(snapshot, overrides)
