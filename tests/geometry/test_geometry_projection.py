"""worldgen.geometry.world: rays, disparity <-> distance, sky, ground, 16-bit depth images, normals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldgen.errors import SceneError, UserInputError
from worldgen.geometry.normals import camera_to_world_normals, distance_normals
from worldgen.geometry.rays import column_azimuths, points_from_distance, project_points, row_slopes
from worldgen.geometry.world import GeometrySettings, build_world, default_geometry, detect_ground, disparity_to_distance, distance_to_disparity, raw_distance, read_depth_png, sky_mask
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.projection import CylindricalProjection
from worldgen.scene.image_files import encode_png, to_uint16

METRIC = {"disparity_scale": 2.0, "disparity_shift": 0.0, "near": 0.1, "far": 100.0, "eye_height": 1.6}


def floor_and_wall(width=128, height=48, span=360.0, wall=4.0, floor=1.6):
    """Horizontal distance of a cylindrical wall standing on a floor `floor` m below the eye."""
    proj = CylindricalProjection(width, height, span)
    t = row_slopes(proj)[:, None] * np.ones((1, width))
    r = np.where(t < 0, np.minimum(wall, floor / np.maximum(-t, 1e-9)), wall)
    return proj, r.astype(np.float32)


# Rays and projection ------------------------------------------------------------------------------

def test_first_column_looks_down_minus_z_and_azimuth_grows_to_the_right():
    proj = CylindricalProjection(360, 90, 360.0)
    theta = column_azimuths(proj)
    assert theta[0] == pytest.approx(math.radians(0.5))
    assert np.all(np.diff(theta) > 0)
    pts = points_from_distance(np.ones((90, 360), np.float32), proj)
    assert pts[45, 0, 2] < -0.99 and abs(pts[45, 0, 0]) < 0.01  # looking down -z
    assert pts[45, 90, 0] > 0.99  # a quarter turn to the right is +x
    assert pts[0, 0, 1] > 0 > pts[-1, 0, 1]  # the top row is above the eye, y up


def test_height_follows_the_convention():
    proj = CylindricalProjection(200, 64, 90.0)
    r = np.full((64, 200), 3.0, np.float32)
    pts = points_from_distance(r, proj)
    expected = 3.0 * (64 / 2 - (np.arange(64) + 0.5)) / proj.focal_px
    np.testing.assert_allclose(pts[:, 7, 1], expected, rtol=1e-6)
    np.testing.assert_allclose(np.hypot(pts[..., 0], pts[..., 2]), 3.0, rtol=1e-6)  # horizontal distance


@pytest.mark.parametrize("span", [360.0, 180.0, 47.5])
def test_points_project_back_to_their_pixels_and_distances(span):
    proj, r = floor_and_wall(96, 40, span)
    rng = np.random.default_rng(0)
    r = r * rng.uniform(0.5, 2.0, r.shape).astype(np.float32)
    pts = points_from_distance(r, proj)
    col, row, dist = project_points(pts, proj)
    u, v = np.meshgrid(np.arange(96), np.arange(40))
    np.testing.assert_allclose(col, u, atol=1e-3)
    np.testing.assert_allclose(row, v, atol=1e-3)
    np.testing.assert_allclose(dist, r, rtol=1e-5)


def test_vertical_field_of_view_is_the_one_the_image_implies():
    proj = CylindricalProjection(2048, 512, 360.0)
    top = row_slopes(proj, np.array([-0.5]))[0]  # the top edge of the image
    assert math.degrees(2 * math.atan(top)) == pytest.approx(proj.vfov_deg)


# Disparity <-> distance ---------------------------------------------------------------------------

def test_distance_follows_the_documented_formula_and_round_trips():
    s = GeometrySettings.from_dict({"disparity_scale": 0.5, "disparity_shift": 0.05, "near": 0.5, "far": 50.0})
    disparity = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    raw = 1.0 / (disparity * 0.5 + 0.05)
    np.testing.assert_allclose(raw_distance(disparity, s), raw, rtol=1e-6)
    d = disparity_to_distance(disparity, s)
    np.testing.assert_allclose(d, np.clip(raw, 0.5, 50.0), rtol=1e-6)
    inside = (raw > 0.5) & (raw < 50.0)
    np.testing.assert_allclose(distance_to_disparity(d[inside], s), disparity[inside], atol=1e-6)


def test_near_and_far_clip_and_world_scale_multiplies_before_clipping():
    s = GeometrySettings.from_dict({"disparity_scale": 1.0, "disparity_shift": 0.0, "near": 1.0, "far": 10.0})
    disparity = np.array([4.0, 0.5, 0.2, 0.05], np.float32)  # raw 0.25, 2, 5, 20 m
    np.testing.assert_allclose(disparity_to_distance(disparity, s), [1.0, 2.0, 5.0, 10.0], rtol=1e-6)
    np.testing.assert_allclose(disparity_to_distance(disparity, s, world_scale=3.0), [1.0, 6.0, 10.0, 10.0], rtol=1e-6)


def test_sky_is_zero_disparity_or_at_far():
    s = GeometrySettings.from_dict({"disparity_scale": 1.0, "disparity_shift": 0.0, "near": 0.1, "far": 10.0})
    disparity = np.array([0.0, 1e-9, 0.05, 0.1, 0.2, np.nan], np.float32)  # raw inf, 1e9, 20, 10, 5
    assert sky_mask(disparity, s).tolist() == [True, True, True, True, False, True]
    d = disparity_to_distance(disparity, s)
    assert np.all(np.isfinite(d)) and d[0] == 10.0


def test_relative_defaults_and_metric_defaults():
    relative = GeometrySettings.from_dict({})
    assert relative.to_dict() == GeometrySettings.from_dict(default_geometry()).to_dict()
    assert relative.fit_ground and relative.sky_disparity > 0 and relative.eye_height == pytest.approx(1.6)
    metric = GeometrySettings.from_dict({"disparity_scale": 0.999, "disparity_shift": 0.001})
    assert not metric.fit_ground and metric.sky_disparity < 1e-5


@pytest.mark.parametrize("bad", [{"near": 5.0, "far": 1.0}, {"disparity_scale": -1.0}, {"eye_height": 0},
                                 {"far": "far away"}, {"near": float("nan")}])
def test_bad_geometry_is_a_user_error(bad):
    with pytest.raises(UserInputError):
        GeometrySettings.from_dict(dict(METRIC, **bad))


# 16-bit depth images --------------------------------------------------------------------------------

def test_sixteen_bit_depth_png_round_trips_without_saturation():
    disparity = np.linspace(0.0, 1.0, 256 * 64, dtype=np.float64).reshape(64, 256)
    png = encode_png(to_uint16(disparity, (0.0, 1.0)))
    back = read_depth_png(png)
    assert back.dtype == np.float32 and back.shape == disparity.shape
    assert np.abs(back - disparity).max() <= 0.5 / 65535 + 1e-7  # 16-bit precision, not 8-bit
    assert len(np.unique(back)) > 10_000  # an 8-bit read would give at most 256 levels
    assert back.max() == pytest.approx(1.0) and (back >= 0.99).mean() < 0.02  # nothing pinned at the top


def test_eight_bit_depth_png_is_scaled_not_saturated(tmp_path):
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    path = tmp_path / "d8.png"
    path.write_bytes(encode_png(np.repeat(ramp[..., None], 3, axis=2)))
    back = read_depth_png(path)
    np.testing.assert_allclose(back[0], np.arange(256) / 255.0, atol=1e-6)


def test_unreadable_depth_image_is_a_user_error():
    with pytest.raises(UserInputError):
        read_depth_png(b"not a png")


# Normals -----------------------------------------------------------------------------------------

def test_normals_of_a_wall_face_the_eye_and_the_floor_faces_up():
    proj, r = floor_and_wall()
    n = distance_normals(r, proj, np.arange(proj.height), np.arange(proj.width))
    pts = points_from_distance(r, proj)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    assert np.all(np.einsum("...i,...i", n, pts) < 0)  # every normal faces the camera
    t = row_slopes(proj)
    floor_rows = np.flatnonzero(t < -1.6 / 4.0 - 0.05)
    wall_rows = np.flatnonzero((t > -1.6 / 4.0 + 0.05) & (t < 0.3))
    assert np.all(n[floor_rows[2:-2], :, 1] > 0.999)
    toward = -pts[wall_rows] / np.linalg.norm(pts[wall_rows], axis=-1, keepdims=True)
    horizontal = toward * np.array([1, 0, 1])
    horizontal /= np.linalg.norm(horizontal, axis=-1, keepdims=True)
    assert np.all(np.einsum("...i,...i", n[wall_rows], horizontal) > 0.999)


def test_normals_agree_with_cross_products_of_the_point_grid():
    proj, r = floor_and_wall(256, 64)
    r = r * (1.0 + 0.2 * np.sin(np.arange(256) / 9.0))[None, :].astype(np.float32)  # a wavy wall
    n = distance_normals(r, proj, np.arange(64), np.arange(256))
    p = points_from_distance(r, proj).astype(np.float64)
    du = np.roll(p, -1, 1) - np.roll(p, 1, 1)
    dv = p[2:] - p[:-2]
    cross = np.cross(dv, du[1:-1])
    cross /= np.linalg.norm(cross, axis=-1, keepdims=True)
    cross *= -np.sign(np.einsum("...i,...i", cross, p[1:-1]))[..., None]
    agree = np.einsum("...i,...i", cross, n[1:-1])
    assert np.percentile(agree, 5) > 0.99


def test_camera_frame_normals_rotate_with_the_column():
    proj = CylindricalProjection(8, 4, 360.0)
    local = np.zeros((4, 8, 3), np.float32)
    local[..., 2] = 1.0  # facing the viewer
    world = camera_to_world_normals(local, proj)
    rays = points_from_distance(np.ones((4, 8), np.float32), proj) * np.array([1, 0, 1])
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    np.testing.assert_allclose(world, -rays, atol=1e-6)


def test_camera_frame_convention_matches_the_normal_modality_plugin():
    normal = pytest.importorskip("worldgen.plugins.normal")
    proj = CylindricalProjection(16, 8, 270.0)
    world = np.random.default_rng(2).normal(size=(8, 16, 3)).astype(np.float32)
    world /= np.linalg.norm(world, axis=-1, keepdims=True)
    # The plugin's world -> camera frame, undone by ours, gives the same vectors back.
    np.testing.assert_allclose(camera_to_world_normals(normal.world_to_camera(world, proj), proj), world, atol=1e-5)


# Ground and world scale ---------------------------------------------------------------------------

def test_ground_is_found_under_a_wall():
    proj, r = floor_and_wall(256, 96, floor=2.3)
    pts = points_from_distance(r, proj)
    assert detect_ground(pts, np.ones(r.shape, bool)) == pytest.approx(2.3, rel=1e-3)


def test_no_ground_when_there_is_only_a_wall():
    proj = CylindricalProjection(256, 96, 360.0)
    pts = points_from_distance(np.full((96, 256), 5.0, np.float32), proj)
    assert detect_ground(pts, np.ones((96, 256), bool)) is None


def test_relative_depth_is_scaled_so_the_eye_is_at_eye_height():
    proj, r = floor_and_wall(256, 96, wall=4.0, floor=1.6)
    geometry = default_geometry()  # relative: scale 1, shift 0.01, fit_ground
    true_scale = 1.2  # the relative map's distances are 1.2 times too small
    disparity = (1.0 / (r / true_scale) - geometry["disparity_shift"]) / geometry["disparity_scale"]
    assert 0 < disparity.min() and disparity.max() < 1
    snap = Snapshot(np.zeros((96, 256, 3), np.float32), {"depth": disparity[..., None].astype(np.float32)},
                    proj, geometry)
    world = build_world(snap)
    assert world.ground_height == pytest.approx(1.6)
    assert world.world_scale == pytest.approx(true_scale, rel=1e-3)
    np.testing.assert_allclose(world.distance, r, rtol=1e-3)
    floor = world.points[..., 1][row_slopes(proj) < -0.5]
    np.testing.assert_allclose(floor, -1.6, rtol=1e-3)


def test_metric_depth_is_not_rescaled_and_sky_goes_to_far():
    proj, r = floor_and_wall(128, 48)
    disparity = 1.0 / (2.0 * r)
    disparity[:5] = 0.0  # sky band
    snap = Snapshot(np.zeros((48, 128, 3), np.float32), {"depth": disparity[..., None].astype(np.float32)},
                    proj, dict(METRIC))
    world = build_world(snap)
    assert world.world_scale == 1.0
    assert world.sky[:5].all() and not world.sky[5:].any()
    np.testing.assert_allclose(world.distance[5:], r[5:], rtol=1e-5)
    np.testing.assert_allclose(world.distance[:5], 100.0)
    assert world.ground_height == pytest.approx(1.6, rel=1e-3)


def test_decimated_world_samples_every_step_pixel():
    proj, r = floor_and_wall(128, 48)
    snap = Snapshot(np.zeros((48, 128, 3), np.float32), {"depth": (1.0 / (2.0 * r))[..., None].astype(np.float32)},
                    proj, dict(METRIC))
    world = build_world(snap, step=4)
    assert world.points.shape == (12, 32, 3)
    np.testing.assert_allclose(world.distance, r[::4, ::4], rtol=1e-5)
    col, row, _ = project_points(world.points, proj)
    np.testing.assert_allclose(col, np.arange(0, 128, 4)[None, :] * np.ones((12, 1)), atol=1e-3)
    np.testing.assert_allclose(row, np.arange(0, 48, 4)[:, None] * np.ones((1, 32)), atol=1e-3)


def test_scene_without_depth_or_normals_is_a_scene_error():
    proj = CylindricalProjection(16, 8)
    with pytest.raises(SceneError, match="depth"):
        build_world(Snapshot(np.zeros((8, 16, 3), np.float32), {}, proj, {}))
    with pytest.raises(UserInputError):
        build_world(Snapshot(np.zeros((8, 16, 3), np.float32), {"depth": np.ones((8, 16, 1), np.float32)}, proj, {}),
                    step=0)


def test_a_normal_layer_beside_depth_gives_the_shading_normals():
    proj, r = floor_and_wall(64, 32)
    tilted = np.zeros((32, 64, 3), np.float32)
    tilted[..., 0], tilted[..., 2] = 0.6, 0.8  # every surface turned 37 degrees to the right
    snap = Snapshot(np.zeros((32, 64, 3), np.float32),
                    {"depth": (1.0 / (2.0 * r))[..., None].astype(np.float32), "normal": tilted}, proj, dict(METRIC))
    world = build_world(snap)
    np.testing.assert_allclose(world.normals, camera_to_world_normals(tilted, proj), atol=1e-6)
    np.testing.assert_allclose(world.distance, r, rtol=1e-5)  # the geometry still comes from depth
