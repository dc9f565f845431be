"""A world with NaN or inf layers is never made (issue 26, case 6). A region weight of 1e-47 is 0 in
float32, so pixels that region covers had condition weights summing to 0 and the blend divided by
it: a 98% NaN world that the CLI and the server committed with exit 0 and every later command
refused. Weights are now bounded to what float32 blends safely, and the scene store refuses to
commit any non-finite layer, whatever produced it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from reliability_support import assert_error, invoke, tree

from worldgen.errors import UserInputError
from worldgen.numerics import NumericalError
from worldgen.scene.store import Scene


# Decimal spellings: the --region syntax has no exponent (1e-47 arrives through recipes and requests).
@pytest.mark.parametrize("weight", ["0." + "0" * 46 + "1", "0.0001", "0"])
def test_a_vanishing_region_weight_is_refused_on_the_command_line(tmp_path, weight):
    result = invoke(["pano", "hills", "-o", tmp_path / "w.glb", "--backend", "procedural", "--size", "64x32",
                     "--region", f"0:90*{weight}=a boat"])
    assert_error(result, "weight", "0.001")
    assert not (tmp_path / "w").exists()


def test_a_vanishing_region_weight_is_refused_in_a_recipe(tmp_path):
    from worldgen.recipes import load_recipe

    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\nprompt = "hills"\n[[region]]\nprompt = "a boat"\nazimuth = [0, 90]\n'
                      'weight = 1e-47\n')
    with pytest.raises(UserInputError, match=r"region\[1\]\.weight: must be .* between 0\.001 and 100"):
        load_recipe(recipe)


def test_a_vanishing_region_weight_is_refused_in_a_server_request():
    from worldgen.requests import WorldRequest

    body = {"prompt": "hills", "regions": [{"prompt": "a boat", "azimuth": [0, 90], "weight": 1e-47}]}
    with pytest.raises(UserInputError, match="weight"):
        WorldRequest.parse(body, "request")
    body["regions"][0]["weight"] = 0.5
    assert WorldRequest.parse(body, "request").regions[0].weight == 0.5  # control: a real weight passes


def test_the_smallest_allowed_weight_blends_to_finite_weights():
    from worldgen.geometry.regions import Region, blend_by_weights, condition_weights

    regions = [Region(prompt="a boat", azimuth=(0, 90), weight=0.001, feather=0)]
    weights = condition_weights(regions, 64, 8, 360.0)
    layers = [np.zeros((8, 64, 1), np.float32), np.ones((8, 64, 1), np.float32)]
    assert np.isfinite(blend_by_weights(layers, weights)).all()


def _with_nan(snapshot, layer: str):
    if layer == "image":
        image = snapshot.image.copy()
        image[0, 0, 0] = np.nan
        return dataclasses.replace(snapshot, image=image)
    depth = snapshot.modalities["depth"].copy()
    depth[:, : depth.shape[1] // 2] = np.inf
    return dataclasses.replace(snapshot, modalities={**snapshot.modalities, "depth": depth})


@pytest.mark.parametrize("layer", ["image", "depth"])
def test_a_non_finite_version_is_never_committed(scene, layer):
    opened = Scene.open(scene)
    before = tree(scene)
    with pytest.raises(NumericalError, match=f"NaN or infinite values in {layer}"):
        opened.add_version(_with_nan(opened.load(), layer), operation="refine")
    assert tree(scene) == before  # no version, no staging folder, the manifest untouched
    assert Scene.open(scene).current == 1


def test_a_non_finite_world_never_becomes_a_scene(scene, tmp_path):
    snapshot = _with_nan(Scene.open(scene).load(), "depth")
    with pytest.raises(NumericalError, match="50% of values"):
        Scene.create(tmp_path / "new", snapshot, operation="pano", prompt="x", seed=0, backend="procedural",
                     backend_settings={}, modality="depth")
    assert not (tmp_path / "new").exists()
