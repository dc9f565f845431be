"""Region prompts without a model: the text syntax, soft coverage on the canvas, condition weights,
the per-pixel blending of the sampler's denoiser, and the procedural backend's regions."""

import numpy as np
import pytest
import torch

from worldgen.backend import GenerateRequest
from worldgen.errors import UserInputError
from worldgen.geometry.regions import (Region, condition_weights, latent_condition_weights, parse_region,
                              regional_denoiser)
from worldgen.sampler.tiled import WindowBatch
from worldgen.sampler.windows import tile_layout
from worldgen.scene.image_files import encode_png


# Parsing -----------------------------------------------------------------------------------------

def test_azimuth_elevation_and_weight_syntax():
    plain = parse_region("0:90=a lighthouse on a cliff")
    assert plain.azimuth == (0.0, 90.0) and plain.elevation is None and plain.weight == 1.0
    assert plain.prompt == "a lighthouse on a cliff"
    full = parse_region("330:30@-5.5:20*1.5=a castle = on a hill")
    assert full.azimuth == (330.0, 30.0) and full.elevation == (-5.5, 20.0) and full.weight == 1.5
    assert full.prompt == "a castle = on a hill"          # only the first '=' separates


def test_mask_regions_read_the_image(tmp_path):
    mask = np.zeros((16, 32, 3), np.uint8)
    mask[:, 8:16] = 255
    (tmp_path / "boat.png").write_bytes(encode_png(mask))
    region = parse_region(f"{tmp_path / 'boat.png'}*2=a red boat")
    assert region.mask.shape == (16, 32) and region.weight == 2.0
    assert region.mask[:, 8:16].min() == 1.0 and region.mask[:, :8].max() == 0.0
    assert region.to_record()["mask"] == str(tmp_path / "boat.png")


@pytest.mark.parametrize("text, fragment", [
    ("0:90", "is not"),
    ("=a boat", "is not"),
    ("10:10=a boat", "empty"),
    ("0:400=a boat", "0..360"),
    ("0:90@30:10=a boat", "elevation"),
    ("0:90*0=a boat", "weight"),
    ("0:x=a boat", "azimuth range"),
    ("missing.png=a boat", "does not exist"),
])
def test_bad_regions_name_the_fix(text, fragment):
    with pytest.raises(UserInputError) as info:
        parse_region(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


# Coverage and weights ------------------------------------------------------------------------------

def _column_at(azimuth_deg, width=360):
    return int(azimuth_deg / 360 * width)


def test_coverage_is_soft_at_the_edges_and_zero_outside():
    cover = Region(prompt="a boat", azimuth=(90, 180), feather=10).coverage(360, 4, 360.0)
    row = cover[0]
    assert row[_column_at(135)] == 1.0                                     # well inside
    assert row[_column_at(40)] == 0.0 and row[_column_at(250)] == 0.0      # well outside
    assert 0.4 < row[_column_at(90)] < 0.6 and 0.4 < row[_column_at(180)] < 0.6  # the edge is half way
    ramp = row[_column_at(80):_column_at(100)]
    assert np.all(np.diff(ramp) >= 0) and ramp[0] < 0.1 and ramp[-1] > 0.9  # a linear ramp in between
    assert np.array_equal(cover, np.broadcast_to(row, cover.shape))        # no elevation: every row alike


def test_a_region_through_zero_wraps_on_a_full_circle_only():
    cover = Region(prompt="a gate", azimuth=(330, 30), feather=0).coverage(360, 2, 360.0)[0]
    assert cover[_column_at(350)] == 1 and cover[_column_at(10)] == 1 and cover[_column_at(180)] == 0
    assert cover.sum() == 60
    with pytest.raises(UserInputError, match="only a full 360"):
        Region(prompt="a gate", azimuth=(330, 30)).coverage(180, 2, 180.0)


def test_elevation_limits_rows_above_the_horizon():
    cover = Region(prompt="islands", azimuth=(0, 360), elevation=(10, 40), feather=0).coverage(360, 64, 360.0)
    top, horizon, bottom = cover[2, 100], cover[32, 100], cover[60, 100]
    assert (top, horizon, bottom) == (1.0, 0.0, 0.0)


def test_condition_weights_put_the_panorama_prompt_where_no_region_is():
    regions = [Region(prompt="a", azimuth=(0, 90), feather=0), Region(prompt="b", azimuth=(45, 135), weight=3.0,
                                                                     feather=0)]
    weights = condition_weights(regions, 360, 2, 360.0)
    assert weights.shape == (3, 2, 360) and (weights.sum(axis=0) > 0).all()
    assert tuple(weights[:, 0, _column_at(200)]) == (1.0, 0.0, 0.0)
    assert tuple(weights[:, 0, _column_at(20)]) == (0.0, 1.0, 0.0)
    assert tuple(weights[:, 0, _column_at(60)]) == (0.0, 1.0, 3.0)   # overlap: the heavier region wins 3:1


def test_a_region_that_covers_nothing_is_an_error():
    with pytest.raises(UserInputError, match="covers no part"):
        condition_weights([Region(prompt="deep", azimuth=(0, 90), elevation=(-90, -89), feather=0)], 360, 64, 360.0)


# The regional denoiser -------------------------------------------------------------------------------

def _layout_batch(width=32, height=8, window=8):
    layout = tile_layout(width, height, (window, window), (window // 2, window // 2), circular=True, offset=(2, 0))
    return layout, WindowBatch(layout.index(), layout)


def test_blend_runs_each_window_once_per_touching_condition_in_one_call_and_blends_per_pixel():
    regions = [Region(prompt="lighthouse", azimuth=(0, 90)), Region(prompt="castle", azimuth=(180, 250), weight=2)]
    weights = latent_condition_weights(regions, 32, 8, 360.0)
    layout, batch = _layout_batch()
    calls = []

    def fake(x, t, windows, conditions):
        calls.append((windows.index.clone(), conditions.clone()))
        return conditions.float()[:, None, None, None].expand(-1, 2, *x.shape[-2:]) + 10.0

    x = torch.zeros(len(layout), 2, 8, 8)
    eps = regional_denoiser(fake, weights, "blend")(x, torch.tensor(500), batch)
    assert len(calls) == 1                                          # every (window, condition) pair in ONE call
    index, conditions = calls[0]
    crops = batch.crop(weights)
    for k in range(len(layout)):
        seen = {int(c) for i, c in zip(index, conditions) if torch.equal(i, batch.index[k])}
        touching = {c for c in range(3) if crops[k, c].max() > 0}
        assert seen == touching
    # Per pixel: the weighted mean of the conditions' predictions (10 + condition index here).
    expected = (crops * (torch.arange(3.0)[None, :, None, None] + 10.0)).sum(1) / crops.sum(1)
    assert torch.allclose(eps[:, 0], expected) and torch.allclose(eps[:, 1], expected)


def test_window_mode_gives_each_window_the_condition_covering_most_of_it():
    regions = [Region(prompt="lighthouse", azimuth=(0, 90), feather=0)]
    weights = latent_condition_weights(regions, 32, 8, 360.0)
    layout, batch = _layout_batch()
    seen = []

    def fake(x, t, windows, conditions):
        seen.append(conditions.clone())
        return torch.zeros_like(x)

    regional_denoiser(fake, weights, "window")(torch.zeros(len(layout), 2, 8, 8), torch.tensor(1), batch)
    crops = batch.crop(weights)
    share = crops[:, 1].flatten(1).mean(1)
    assert torch.equal(seen[0], (share > 0.5).long())


# The procedural backend ------------------------------------------------------------------------------

def test_procedural_regions_change_only_their_azimuths():
    from worldgen.backends.procedural import ProceduralBackend

    backend = ProceduralBackend()
    kw = dict(prompt="rolling green hills", width=360, height=64)
    plain = backend.generate(GenerateRequest(**kw))
    region = Region(prompt="snowy mountains", azimuth=(100, 160), feather=10)
    regional = backend.generate(GenerateRequest(**kw, regions=[region]))
    changed = np.abs(plain.image - regional.image).max(axis=(0, 2)) > 0
    depth_changed = np.abs(plain.modalities["depth"] - regional.modalities["depth"]).max(axis=(0, 2)) > 0
    inside = slice(_column_at(110), _column_at(150))
    assert changed[inside].all() and depth_changed[inside].any()        # the region's words shape its part
    outside = np.r_[0:_column_at(94), _column_at(166):360]                # beyond the half-feather margin
    assert not changed[outside].any() and not depth_changed[outside].any()
