"""Recipes run through the public API (issue 20): the preset is a request value, the backend is chosen
by worldgen.world.backends, and every step is a scene version the API wrote."""

import json

from click.testing import CliRunner

from worldgen.cli.main import cli

RECIPE = '''prompt = "a lake below mountains"
size = "128x32"
seed = 3

[[place]]
prompt = "a stone tower"
azimuth = 90
distance = 12
width = 4
'''


def test_build_with_preset_fast_records_it_per_request_and_places_through_the_api(tmp_path):
    recipe = tmp_path / "lake.toml"
    recipe.write_text(RECIPE)
    result = CliRunner().invoke(cli, ["build", str(recipe), "-o", str(tmp_path / "out" / "lake.glb"),
                                      "--backend", "procedural", "--preset", "fast", "-q"])
    assert result.exit_code == 0, result.output
    versions = json.loads((tmp_path / "out" / "lake" / "scene.json").read_text())["versions"]
    assert [v["operation"] for v in versions] == ["pano", "place"]
    assert (versions[0]["params"]["steps"], versions[0]["params"]["preset"]) == (14, "fast")
    assert "preset" not in versions[0]["backend"].get("settings", {})  # not a load setting any more
    placed = versions[1]["params"]
    assert placed["recipe"] == str(recipe) and placed["placement"]["prompt"] == "a stone tower"
    assert (tmp_path / "out" / "lake.glb").read_bytes()[:4] == b"glTF"


def test_auto_without_weights_falls_back_with_the_shared_note(tmp_path):
    from worldgen.recipes import BuildOptions, parse_recipe, resolve_backend
    from worldgen.world.backends import RECIPE_FALLBACK_HINT

    notes = []
    spec, settings = resolve_backend(parse_recipe(RECIPE), BuildOptions(settings={"preset": "fast", "device": "cpu"}),
                                     notes.append)
    assert spec.name == "procedural" and settings == {}
    assert notes == [RECIPE_FALLBACK_HINT, "the procedural backend takes no settings; ignoring device"]
