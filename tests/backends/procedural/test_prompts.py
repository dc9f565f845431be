"""The prompt decides the world: documented words choose biome, landform, water, time and
weather; the worlds they make differ in the ways the words say; words that cannot be modelled are
reported once on stderr and recorded in the scene."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from worldgen.backends.procedural.render import GROUND, WATER
from worldgen.backends.procedural.vocabulary import Recipe, vocabulary
from worldgen.backends.procedural.world import ProceduralWorld
from worldgen.cli.main import cli

W, H = 384, 96
REPO = Path(__file__).resolve().parents[3]


def frame(prompt, seed=0):
    return ProceduralWorld.from_prompt(prompt, seed).render_cylinder(W, H)


def luminance(rgb):
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def test_words_choose_each_part_of_the_recipe():
    r = Recipe.from_prompt("a misty fjord at dawn")
    assert (r.landform, r.water, r.time, r.mist > 0, r.unknown) == ("fjord", "sea", "dawn", True, ())
    r = Recipe.from_prompt("a volcanic island in a stormy sea")
    assert (r.biome, r.landform, r.water, r.weather) == ("volcanic", "island", "sea", "stormy")
    r = Recipe.from_prompt("a tropical beach with palm trees")
    assert (r.biome, r.landform, r.plants) == ("tropical", "coast", "palm")
    r = Recipe.from_prompt("rolling green hills under a cloudy sky")
    assert (r.landform, r.weather) == ("hills", "cloudy")
    assert Recipe.from_prompt("a snowy pine forest at night").snow


def test_desert_is_warm_and_dry_hills_are_green():
    desert = frame("sand dunes in the desert at noon")
    ground = desert.rgb[desert.kind == GROUND]
    assert ground[:, 0].mean() > 1.25 * ground[:, 2].mean()  # warm: red well above blue
    assert not (desert.kind == WATER).any()  # dry
    hills = frame("rolling green hills at noon")
    green = hills.rgb[hills.kind == GROUND]
    assert green[:, 1].mean() > green[:, 0].mean() and green[:, 1].mean() > green[:, 2].mean()


def test_night_is_dark():
    night, noon = frame("a lake at night"), frame("a lake at noon")
    assert luminance(night.rgb).mean() < 0.3 * luminance(noon.rgb).mean()


def test_mist_lowers_far_contrast():
    clear = Recipe.from_prompt("mountains at noon")
    misty = dataclasses.replace(clear, mist=0.7)
    assert misty.landform == clear.landform
    a = ProceduralWorld(clear, 7).render_cylinder(W, H)
    b = ProceduralWorld(misty, 7).render_cylinder(W, H)
    np.testing.assert_allclose(a.distance, b.distance)  # the same place ...
    far = np.isfinite(a.distance) & (a.distance > 400)
    assert far.mean() > 0.02
    assert luminance(b.rgb[far]).std() < 0.6 * luminance(a.rgb[far]).std()  # ... seen through mist


@pytest.mark.parametrize("prompt, wet", [("a lake among rolling hills", True), ("a misty fjord at dawn", True),
                                         ("a tropical beach with palm trees", True),
                                         ("a volcanic island in a stormy sea", True),
                                         ("rolling green hills", False), ("snowy mountains", False)])
def test_water_is_there_when_the_prompt_asks_for_it(prompt, wet):
    share = (frame(prompt).kind == WATER).mean()
    assert (share > 0.01) if wet else (share == 0), share


def test_prompts_of_the_issue_make_distinct_worlds():
    prompts = ["a misty fjord at dawn", "a desert canyon at noon", "a snowy pine forest at night",
               "a tropical beach with palm trees", "rolling green hills under a cloudy sky",
               "a volcanic island in a stormy sea"]
    images = [frame(p).rgb for p in prompts]
    for i in range(len(images)):
        for j in range(i):
            assert np.abs(images[i] - images[j]).mean() > 0.06, (prompts[i], prompts[j])


def test_unknown_words_are_reported():
    r = Recipe.from_prompt("inside a gothic cathedral")
    assert r.unknown == ("inside", "gothic", "cathedral")
    assert Recipe.from_prompt("a cathedral").note() == (
        "procedural: 'cathedral' is not modelled; showing the nearest landscape")
    assert Recipe.from_prompt("a beautiful lake under the stars").note() == ""


def test_the_cli_names_unknown_words_once_and_the_scene_records_them(tmp_path):
    out = tmp_path / "c.glb"
    result = CliRunner().invoke(cli, ["pano", "a cathedral on a hill", "--backend", "procedural",
                                      "--size", "256x64", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    note = "procedural: 'cathedral' is not modelled; showing the nearest landscape"
    assert result.stderr.count(note) == 1
    manifest = json.loads(next((tmp_path / "c").glob("*.json")).read_text())
    assert manifest["versions"][-1]["geometry"]["procedural"]["not_modelled"] == ["cathedral"]
    assert manifest["versions"][-1]["geometry"]["procedural"]["note"] == note


def test_the_documented_vocabulary_is_the_vocabulary():
    doc = (REPO / "docs" / "procedural.md").read_text()
    missing = [w for values in vocabulary().values() for words in values.values() for w in words
               if f"{w}" not in doc]
    assert not missing, missing
