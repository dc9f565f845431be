"""Normals from depth on the cylinder, checked against surfaces whose normals are known exactly."""

import numpy as np
import pytest

from worldgen.errors import UserInputError
from worldgen.geometry.normals import camera_to_world_normals
from worldgen.plugins import normal
from worldgen.geometry.projection import CylindricalProjection

EYE_HEIGHT = 1.6
GEOMETRY = {"disparity_scale": 1.0 - 1.0 / 1000.0, "disparity_shift": 1.0 / 1000.0, "near": 1.0, "far": 1000.0}


def to_disparity(distance):
    """Exact inverse of distance = 1 / (v * scale + shift) for GEOMETRY."""
    return ((1.0 / distance - GEOMETRY["disparity_shift"]) / GEOMETRY["disparity_scale"]).astype(np.float32)


def row_heights(projection):
    """y / r of each row's centre, per the projection conventions."""
    v = np.arange(projection.height) + 0.5
    return (projection.height / 2.0 - v) / projection.focal_px


def ground_distance(projection):
    """Horizontal distance to the plane y = -EYE_HEIGHT below the horizon; far (sky) above it."""
    slope = row_heights(projection)
    r = np.where(slope < 0, EYE_HEIGHT / np.maximum(-slope, 1e-12), 1000.0)
    return np.repeat(np.minimum(r, 1000.0)[:, None], projection.width, axis=1)


def angle_deg(a, b):
    """Angle between vectors; atan2 of |a x b| and a . b stays accurate near zero, unlike arccos."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1)))


@pytest.mark.parametrize("span", [360.0, 90.0])
def test_a_constant_distance_cylinder_faces_the_axis(span):
    projection = CylindricalProjection(64, 32, span)
    n = normal.normals_from_distance(np.full((32, 64), 5.0), projection)
    error = angle_deg(n, np.array([0, 0, 1.0]))  # camera frame: toward the viewer
    assert error[:, 1:-1].max() < 1e-3  # exact on a circle, up to float32 points
    # A partial panorama has one neighbour at its borders: a one-sided step, off by half a column.
    border = 0.0 if span == 360.0 else span / 64 / 2
    assert error.max() < border + 1e-3
    world = camera_to_world_normals(n, projection)
    theta = np.radians(span) * (np.arange(64) + 0.5) / 64
    toward_axis = np.stack([-np.sin(theta), np.zeros(64), np.cos(theta)], axis=-1)  # minus the view direction
    assert np.abs(world[..., 1]).max() < 1e-6  # horizontal
    assert angle_deg(world, toward_axis[None]).max() < border + 1e-3


def test_the_ground_plane_points_straight_up_through_the_disparity_path():
    projection = CylindricalProjection(64, 32, 360.0)
    distance = ground_distance(projection)
    rgb = np.zeros((32, 64, 3), np.float32)
    n = normal.SPEC.estimator(rgb, depth=to_disparity(distance)[..., None], projection=projection, geometry=GEOMETRY)
    ground = distance < 999.0
    assert ground.sum() >= 15 * 64  # the whole lower half
    assert angle_deg(n[ground], np.array([0, 1.0, 0])).max() < 0.05
    assert np.allclose(n[~ground], [0, 0, 1])  # sky faces the viewer


def test_the_seam_of_a_360_panorama_matches_its_interior():
    projection = CylindricalProjection(48, 16, 360.0)
    theta = np.radians(360.0) * (np.arange(48) + 0.5) / 48
    # A wall whose distance varies smoothly around the circle (a closed, non-circular room).
    distance = np.repeat((6.0 + 2.0 * np.cos(theta) + np.sin(2 * theta))[None, :], 16, axis=0)
    wrapped = normal.normals_from_distance(distance, projection)
    rolled = normal.normals_from_distance(np.roll(distance, 17, axis=1), CylindricalProjection(48, 16, 360.0))
    # Rolling the panorama by 17 columns rotates the world but not the camera-frame normals.
    assert np.abs(np.roll(wrapped, 17, axis=1) - rolled).max() < 1e-5
    assert np.abs(wrapped[:, 0] - wrapped[:, 1]).max() < 0.2 and np.abs(wrapped[:, -1] - wrapped[:, 0]).max() < 0.2


def test_depth_discontinuities_do_not_bend_the_walls_beside_them():
    projection = CylindricalProjection(64, 16, 360.0)
    distance = np.full((16, 64), 10.0)
    distance[:, 20:40] = 3.0  # a nearer wall segment, itself part of a cylinder
    n = normal.normals_from_distance(distance, projection)
    error = angle_deg(n, np.array([0, 0, 1.0]))
    edges = [19, 20, 39, 40]  # each takes the one-sided step on its own wall: off by half a column
    assert np.delete(error, edges, axis=1).max() < 1e-3 and error.max() < 360 / 64 / 2 + 1e-3
    central_only = normal.normals_from_distance(distance, projection, edge_ratio=1e9)
    assert angle_deg(central_only, np.array([0, 0, 1.0])).max() > 30  # what the edge handling prevents


def test_normals_need_depth_and_say_how_to_get_it():
    with pytest.raises(UserInputError, match="pass depth=.*or depth_model="):
        normal.SPEC.estimator(np.zeros((8, 8, 3), np.float32))


def test_depth_model_option_estimates_depth_first():
    """A stand-in pipeline predicting a constant-disparity wall gives walls facing the viewer."""
    import torch

    calls = []

    def fake_pipeline(image):
        calls.append(image.size)
        ramp = torch.zeros(image.size[1], image.size[0])
        ramp[:, :] = torch.linspace(0.2, 0.8, image.size[1])[:, None]  # relative disparity by row
        return {"predicted_depth": ramp}

    rgb = np.random.default_rng(0).random((16, 32, 3)).astype(np.float32)
    n = normal.SPEC.estimator(rgb, depth_model=fake_pipeline)
    assert calls == [(32, 16)]
    assert n.shape == (16, 32, 3) and np.allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-5)
    # Distance depends on the row only, so the surface is symmetric about the axis and every column
    # sees the same camera-frame normals (the photo's two border columns take one-sided steps).
    assert np.abs(n[:, 1:-1] - n[:, 1:2]).max() < 1e-4
    assert n[..., 1].max() > 0.1 and n[..., 2].min() > 0  # nearer further down: floor-like, facing the viewer


def test_normals_from_rgb_alone_through_a_real_depth_model_folder(tiny_dpt):
    rgb = np.random.default_rng(2).random((16, 24, 3)).astype(np.float32)
    n = normal.SPEC.estimator(rgb, depth_model=str(tiny_dpt))
    assert n.shape == (16, 24, 3) and np.isfinite(n).all()
    assert np.allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-5)


def test_mismatched_sizes_and_bad_geometry_are_clear_errors():
    depth = np.full((8, 16, 1), 0.5, np.float32)
    with pytest.raises(UserInputError, match="depth is 16x8 but the image is 8x8"):
        normal.SPEC.estimator(np.zeros((8, 8, 3), np.float32), depth=depth)
    with pytest.raises(UserInputError, match="geometry near='close' is not a number"):
        normal.SPEC.estimator(None, depth=depth, geometry={"near": "close"})
    with pytest.raises(UserInputError, match="distance map is 16x8 but the projection is 32x8; pass the projection of that map"):
        normal.normals_from_distance(depth, CylindricalProjection(32, 8))


def test_world_and_camera_frames_are_inverse_rotations(unit_normals):
    projection = CylindricalProjection(12, 8, 200.0)
    there = camera_to_world_normals(unit_normals, projection)
    assert np.allclose(normal.world_to_camera(there, projection), unit_normals, atol=1e-6)
    assert np.allclose(np.linalg.norm(there, axis=-1), 1.0, atol=1e-6)
