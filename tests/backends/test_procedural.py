import numpy as np
import pytest

from worldgen.backend import GenerateRequest
from worldgen.backends.procedural import FAR_M, NEAR_M, ProceduralBackend
from worldgen.backends.procedural.vocabulary import Recipe


def generate(prompt="a misty fjord at dawn", seed=0, width=512, height=128, span=360.0):
    return ProceduralBackend().generate(GenerateRequest(prompt, width=width, height=height, seed=seed, span_deg=span))


def distance(snapshot):
    g = snapshot.geometry
    v = snapshot.modalities["depth"][..., 0].astype(np.float64)
    return 1.0 / (v * g["disparity_scale"] + g["disparity_shift"])


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = generate(seed=1), generate(seed=1), generate(seed=2)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.modalities["depth"], b.modalities["depth"])
    assert np.abs(a.image - c.image).mean() > 1e-3


def test_depth_is_layered_sky_farthest_ground_recedes():
    snap = generate("barren snowy mountains", width=1024, height=256)
    d = distance(snap)
    h = d.shape[0]
    sky_row, bottom_row = d[2], d[-1]
    assert np.allclose(sky_row[sky_row > 0.9 * FAR_M], FAR_M, rtol=1e-3)  # the sky is at the far plane
    assert (sky_row > 0.9 * FAR_M).mean() > 0.5  # ... and most of the top row is sky
    assert (bottom_row < 5.0).all() and (bottom_row >= NEAR_M).all()  # ground at the feet
    # Ground recedes: below the horizon, the distance falls towards the bottom of the image.
    column = d[h // 2 + 40:, 0]
    assert (np.diff(column) <= 1e-3 * column[1:]).all()
    # Terrain stands at many distances between the feet and the sky (foothills, ridges, far peaks).
    middle = np.unique(np.round(np.log(d[h // 2 - 20:h // 2 + 2]), 1))
    distinct = middle[(middle > np.log(20)) & (middle < np.log(0.8 * FAR_M))]
    assert len(distinct) >= 10


def test_prompt_words_shape_the_world():
    assert Recipe.from_prompt("a misty fjord at dawn").time == "dawn"
    fjord = Recipe.from_prompt("a misty fjord at dawn")
    assert fjord.mist > 0 and fjord.landform == "fjord" and fjord.water == "sea"
    assert Recipe.from_prompt("desert dunes at night").time == "night"
    night = generate("a lake at night").image.mean()
    day = generate("a lake at noon").image.mean()
    assert night < day * 0.5


def test_full_circle_wraps_without_a_seam():
    img = generate("rolling hills", width=1024, height=128).image
    wrap_jump = np.abs(img[:, 0] - img[:, -1]).mean()
    neighbour_jumps = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))
    assert wrap_jump <= np.percentile(neighbour_jumps, 99)


def test_partial_span_and_bad_requests():
    snap = generate(span=180.0)
    assert snap.projection.span_deg == 180.0
    from worldgen.errors import UserInputError

    with pytest.raises(UserInputError, match="multiple of 8"):
        GenerateRequest("x", width=1001, height=128)
    with pytest.raises(UserInputError, match="prompt is empty"):
        GenerateRequest("   ")
    with pytest.raises(UserInputError, match="outside"):
        GenerateRequest("x", span_deg=400)
