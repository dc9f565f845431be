"""Synthetic scenes with known geometry for the exporter and viewer tests.

``room``: a 360-degree panorama of a cylindrical wall (radius 4 m, 1 m above the eye) standing on
a floor 1.6 m below the eye, a pillar at 2 m in front of part of the wall (a depth step), and sky
(disparity 0) above the wall. Disparity is metric: d = 1 / (2 * disparity).
"""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.geometry import column_azimuths, row_slopes
from worldgen.layers import Snapshot
from worldgen.projection import CylindricalProjection

WALL, PILLAR, FLOOR_Y, WALL_TOP = 4.0, 2.0, -1.6, 1.0
PILLAR_COLUMNS = (0.15, 0.25)  # fraction of the width
METRIC = {"disparity_scale": 2.0, "disparity_shift": 0.0, "near": 0.1, "far": 100.0, "eye_height": 1.6}

SKY_RGB = np.array([0.35, 0.6, 0.95], dtype=np.float32)
PILLAR_RGB = np.array([0.85, 0.15, 0.1], dtype=np.float32)
FLOOR_RGB = np.array([0.45, 0.35, 0.2], dtype=np.float32)


def room_layers(width: int, height: int, span: float = 360.0):
    """(distance (inf = sky), labels, image) of the room, labels 0 sky, 1 wall, 2 pillar, 3 floor."""
    proj = CylindricalProjection(width, height, span)
    t = row_slopes(proj)[:, None] * np.ones((1, width))
    u = np.arange(width)[None, :] * np.ones((height, 1))
    lo, hi = (int(f * width) for f in PILLAR_COLUMNS)
    wall_r = np.where((u >= lo) & (u < hi), PILLAR, WALL)
    floor_r = np.where(t < 0, FLOOR_Y / np.minimum(t, -1e-9), np.inf)
    r = np.minimum(wall_r, floor_r)
    labels = np.where(wall_r == PILLAR, 2, 1)
    labels = np.where(floor_r <= wall_r, 3, labels)
    sky = (t * wall_r > WALL_TOP) & (labels != 3)
    labels = np.where(sky, 0, labels)
    r = np.where(sky, np.inf, r)

    theta = column_azimuths(proj)[None, :] * np.ones((height, 1))
    stripes = 0.5 + 0.4 * np.sin(theta * 12.0)[..., None] * np.array([1.0, 0.6, 0.2])
    image = np.where((labels == 1)[..., None], stripes, 0.0)
    image = np.where((labels == 0)[..., None], SKY_RGB, image)
    image = np.where((labels == 2)[..., None], PILLAR_RGB, image)
    image = np.where((labels == 3)[..., None], FLOOR_RGB, image)
    return proj, r, labels, image.astype(np.float32)


def room_snapshot(width: int = 256, height: int = 64, span: float = 360.0, with_normals: bool = False,
                  depth: bool = True) -> Snapshot:
    proj, r, labels, image = room_layers(width, height, span)
    modalities = {}
    if depth:
        disparity = np.where(np.isfinite(r), 1.0 / (2.0 * r), 0.0)
        modalities["depth"] = disparity[..., None].astype(np.float32)
    if with_normals:
        modalities["normal"] = room_normals(proj, labels)
    return Snapshot(image=image, modalities=modalities, projection=proj, geometry=dict(METRIC), prompt="room")


def room_normals(proj, labels):
    """Camera-frame normals (x right, y up, z toward viewer) of the room: walls face the viewer,
    the floor faces up, the sky faces the viewer."""
    n = np.zeros(labels.shape + (3,), dtype=np.float32)
    n[..., 2] = 1.0
    n[labels == 3] = (0.0, 1.0, 0.0)
    return n


@pytest.fixture
def room():
    return room_snapshot()
