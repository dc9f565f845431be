"""Encode/decode round trips, storage and previews of every shipped modality."""

import numpy as np
import pytest
from PIL import Image

from worldgen.errors import UserInputError
from worldgen.plugins import depth, normal
from worldgen.plugins.colormap import grey, turbo
from worldgen.plugins.contract import check_modality_spec, sample_values
from worldgen.scene.image_files import from_uint16, to_uint16


def test_depth_round_trips_within_quantisation():
    errors = check_modality_spec(depth.SPEC)
    assert errors["error"] < 1e-6
    assert errors["quantised_error"] <= 0.5 / 255 + 1e-6  # half an 8-bit step of the VAE image


def test_edges_round_trips_within_quantisation(edges_spec):
    errors = check_modality_spec(edges_spec)
    assert errors["quantised_error"] <= 0.5 / 255 + 1e-6


def test_normal_round_trips_to_unit_vectors(unit_normals):
    errors = check_modality_spec(normal.SPEC, unit_normals)
    assert errors["error"] < 1e-6 and errors["quantised_error"] < 2 / 255


def test_depth_decode_takes_the_channel_mean_and_clips():
    vae = np.stack([np.full((2, 3), 0.2), np.full((2, 3), 0.4), np.full((2, 3), 0.6)], axis=-1)
    assert np.allclose(depth.SPEC.decode(vae.astype(np.float32)), (0.4 + 1) / 2)
    assert depth.SPEC.decode(np.full((2, 3, 3), 1.7, np.float32)).max() == 1.0
    assert depth.SPEC.decode(np.full((2, 3, 3), -1.7, np.float32)).min() == 0.0


def test_normal_decode_renormalises_and_handles_zero_vectors():
    vae = np.array([[[0.0, 0.0, 0.5], [0.3, 0.4, 0.0], [0.0, 0.0, 0.0]]], np.float32)
    out = normal.SPEC.decode(vae)
    assert np.allclose(np.linalg.norm(out, axis=-1), 1.0)
    assert np.allclose(out[0, 0], [0, 0, 1]) and np.allclose(out[0, 1], [0.6, 0.8, 0])
    assert np.allclose(out[0, 2], [0, 0, 1])  # no direction: facing the viewer


def test_depth_survives_16_bit_storage():
    values = sample_values(depth.SPEC, 16, 24)
    stored = from_uint16(to_uint16(values[..., 0], depth.SPEC.value_range), depth.SPEC.value_range)
    assert np.abs(stored - values[..., 0]).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("name", ["depth", "normal", "edges"])
def test_previews_are_rgb_images_of_the_right_size(name, edges_spec, unit_normals):
    spec = {"depth": depth.SPEC, "normal": normal.SPEC, "edges": edges_spec}[name]
    values = unit_normals if name == "normal" else sample_values(spec, 8, 12)
    image = Image.fromarray(spec.preview(values))
    assert image.mode == "RGB" and image.size == (12, 8)


def test_depth_preview_is_turbo_near_red_far_blue():
    ramp = np.geomspace(0.01, 0.9, 5, dtype=np.float32).reshape(1, 5, 1)  # the preview's scale is logarithmic
    colours = depth.SPEC.preview(ramp)[0].astype(int)
    far, mid, near = colours[0], colours[2], colours[4]
    assert far[2] == far.max() and near[0] == near.max()  # far is blue, near red
    assert mid[1] == mid.max()  # the middle is green
    assert (np.abs(np.diff(colours, axis=0)).sum(axis=1) > 30).all()  # distinct colours along the ramp


def test_depth_preview_tells_far_distances_apart():
    # Metric disparity 1 / (2 r): a linear map paints everything beyond ~20 m the same dark blue.
    distances = np.array([2.0, 20.0, 50.0, 200.0, 500.0])
    colours = depth.SPEC.preview((1.0 / (2.0 * distances)).reshape(1, 5, 1).astype(np.float32))[0].astype(int)
    assert (np.abs(np.diff(colours, axis=0)).sum(axis=1) > 40).all()
    sky = depth.SPEC.preview(np.array([[[0.0], [1e-3]]], np.float32))[0].astype(int)
    assert np.abs(sky[0] - sky[1]).sum() > 10  # the sky stays apart from the farthest surface


def test_normal_preview_is_the_usual_rgb_encoding():
    facing = np.zeros((1, 2, 3), np.float32)
    facing[0, 0] = [0, 0, 1]
    facing[0, 1] = [0, 1, 0]
    assert normal.SPEC.preview(facing).tolist() == [[[128, 128, 255], [128, 255, 128]]]


def test_colormaps_clamp_out_of_range_and_nan():
    values = np.array([-3.0, np.nan, 7.0])
    assert turbo(values).tolist() == [turbo(0.0).tolist(), turbo(0.0).tolist(), turbo(1.0).tolist()]
    assert grey(values).tolist() == [[0, 0, 0], [0, 0, 0], [255, 255, 255]]


@pytest.mark.parametrize("call", [
    lambda: depth.SPEC.encode(np.zeros((4, 5), np.float32)),
    lambda: depth.SPEC.decode(np.zeros((4, 5, 1), np.float32)),
    lambda: normal.SPEC.encode(np.zeros((4, 5, 1), np.float32)),
    lambda: normal.SPEC.preview(np.zeros((4, 5), np.float32)),
])
def test_wrong_shapes_are_clear_errors(call):
    with pytest.raises(UserInputError, match=r"must be an \(H, W, \d\) array"):
        call()


def test_contract_catches_a_lossy_codec():
    import dataclasses

    lossy = dataclasses.replace(depth.SPEC, decode=lambda image: depth.SPEC.decode(image) * 0.9)
    with pytest.raises(AssertionError, match="decode\\(encode\\(x\\)\\) is off"):
        check_modality_spec(lossy)
