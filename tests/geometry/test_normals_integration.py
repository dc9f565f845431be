"""worldgen.geometry.normals_integration: a distance surface from normals alone."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.geometry.normals import distance_normals
from worldgen.geometry.rays import column_azimuths, row_slopes
from worldgen.geometry.world import build_world
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.normals_integration import distance_from_normals, integrate_log_distance, log_distance_gradients
from worldgen.geometry.projection import CylindricalProjection


def box_room(width, height, span=360.0, half=3.0, floor=1.6, ceiling=1.4):
    """Horizontal distance and camera-frame normals of a square room seen from inside."""
    proj = CylindricalProjection(width, height, span)
    theta = column_azimuths(proj)[None, :]
    t = row_slopes(proj)[:, None]
    s, c = np.sin(theta), np.cos(theta)
    r_wall = half / np.maximum(np.abs(s), np.abs(c)) * np.ones_like(t)
    r_floor = np.where(t < 0, floor / np.maximum(-t, 1e-12), np.inf)
    r_ceiling = np.where(t > 0, ceiling / np.maximum(t, 1e-12), np.inf)
    r = np.minimum(r_wall, np.minimum(r_floor, r_ceiling))
    n = np.zeros(r.shape + (3,))
    x_wall = np.abs(s) >= np.abs(c)
    n[..., 0] = np.where(x_wall, -np.sign(s), 0.0)
    n[..., 2] = np.where(x_wall, 0.0, np.sign(c))  # world normals point into the room
    on_floor = r_floor <= np.minimum(r_wall, r_ceiling)
    on_ceiling = r_ceiling <= np.minimum(r_wall, r_floor)
    n[on_floor] = (0.0, 1.0, 0.0)
    n[on_ceiling] = (0.0, -1.0, 0.0)
    # world -> column camera frame: right = (cos, 0, sin), toward viewer = (-sin, 0, cos)
    local = np.stack([n[..., 0] * c + n[..., 2] * s, n[..., 1], -n[..., 0] * s + n[..., 2] * c], axis=-1)
    return proj, r, local.astype(np.float32)


@pytest.mark.parametrize("span", [360.0, 200.0])
def test_room_distances_are_recovered_up_to_scale(span):
    proj, r, normals = box_room(512, 128, span)
    d = distance_from_normals(normals, proj)
    assert np.median(d) == pytest.approx(1.0)
    ratio = d / r
    ratio /= np.median(ratio)
    assert np.abs(ratio - 1).max() < 0.02  # creases cost a little; the shape is right everywhere


def test_gradients_match_finite_differences_of_log_distance():
    proj, r, normals = box_room(256, 64)
    gu, gv = log_distance_gradients(normals, proj)
    log_r = np.log(r)
    du = np.roll(log_r, -1, axis=1) - log_r
    dv = log_r[1:] - log_r[:-1]
    # Away from creases the trapezoid of the analytic gradients equals the differences.
    smooth_u = np.abs(np.roll(normals, -1, axis=1) - normals).sum(-1) < 1e-6
    smooth_v = np.abs(normals[1:] - normals[:-1]).sum(-1) < 1e-6
    np.testing.assert_allclose(du[smooth_u], (0.5 * (gu + np.roll(gu, -1, axis=1)))[smooth_u], atol=2e-4)
    np.testing.assert_allclose(dv[smooth_v], (0.5 * (gv[1:] + gv[:-1]))[smooth_v], atol=2e-4)


def test_integration_is_exact_for_consistent_differences_across_the_seam():
    # Per-pixel derivatives whose trapezoid averages reproduce a smooth periodic z.
    u = np.arange(24) * 2 * np.pi / 24
    z = np.sin(u)[None, :] * np.linspace(1, 2, 16)[:, None]
    z -= z.mean()
    gu = np.cos(u)[None, :] * np.linspace(1, 2, 16)[:, None] * 2 * np.pi / 24
    gv = np.sin(u)[None, :] * np.ones((16, 1)) * (1.0 / 15)
    out = integrate_log_distance(gu, gv, wrap=True)
    assert np.abs(out - z).max() < 0.02


def test_normals_from_depth_integrate_back_to_that_depth():
    proj, r, _ = box_room(256, 64)
    wavy = r * (1.0 + 0.1 * np.sin(np.arange(256) * 2 * np.pi / 256 * 5))[None, :]
    normals_world = distance_normals(wavy.astype(np.float32), proj, np.arange(64), np.arange(256))
    theta = column_azimuths(proj)[None, :]
    c, s = np.cos(theta), np.sin(theta)
    local = np.stack([normals_world[..., 0] * c + normals_world[..., 2] * s, normals_world[..., 1],
                      -normals_world[..., 0] * s + normals_world[..., 2] * c], axis=-1)
    d = distance_from_normals(local, proj)
    ratio = d / wavy
    ratio /= np.median(ratio)
    assert np.percentile(np.abs(ratio - 1), 99) < 0.03


def test_a_normals_only_scene_becomes_a_world_standing_on_its_ground():
    proj, r, normals = box_room(256, 96, floor=1.6)
    snap = Snapshot(np.zeros((96, 256, 3), np.float32), {"normal": normals}, proj, {})
    world = build_world(snap)
    assert world.ground_height == pytest.approx(1.6)
    ratio = world.distance / r
    assert np.abs(ratio - 1).max() < 0.03  # metres, because the eye is 1.6 m above the floor
    assert not world.sky.any()
    # The layer's own normals are used for shading.
    t = row_slopes(proj)
    assert np.all(world.normals[t < -0.9][:, :, 1] > 0.999)
