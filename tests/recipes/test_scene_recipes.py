"""Scene recipes: every shipped recipe validates, errors name their line and field, and recipes run
end to end on the procedural backend, on a tiny JointNet, and as `worldgen batch` jobs."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from worldgen.cli.main import cli
from worldgen.errors import UserInputError
from worldgen.recipes import RecipeError, load_recipe, parse_recipe
from worldgen.scene.store import Scene

SCENES = Path(__file__).resolve().parents[2] / "scenes"
SHIPPED = sorted(SCENES.glob("*.toml"))
PREVIEW = ["--size", "256x64"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_at_least_five_recipes_ship_covering_the_kinds_of_world():
    names = {path.stem for path in SHIPPED}
    assert len(names) >= 5
    recipes = [load_recipe(path) for path in SHIPPED]
    assert any(r.places for r in recipes) and any(r.regions for r in recipes) and any(r.refines for r in recipes)
    assert any(len(r.modalities) == 2 for r in recipes)
    text = " ".join(r.description.lower() for r in recipes)
    for kind in ("outdoor", "interior", "city", "fantasy", "placements"):
        assert kind in text


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_recipe_validates_and_dry_runs(path, tmp_path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.prompt
    result = run("build", path, "--dry-run", "-o", tmp_path / "x.glb")
    assert result.exit_code == 0, result.output
    assert "recipe is valid; nothing was generated" in result.output
    assert result.output.splitlines()[1].strip() == recipe.description
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.glb").exists()


BAD = """\
prompt = "a misty fjord"
seed = "seven"
size = "2000x500"
promt = "typo"

[backend]
name = "jointnet"
region_mode = "sideways"

[[region]]
azimuth = [0, 90]
prompt = "a lighthouse"

[[region]]
azimuth = [10, 400]
prompt = "a castle"

[[place]]
prompt = "a cabin"
azimuth = 40

[[export]]
format = "glb"
path = "../outside.glb"
"""


def test_errors_name_their_line_and_field():
    with pytest.raises(RecipeError) as info:
        parse_recipe(BAD, source="bad.toml")
    found = {(issue.line, issue.field) for issue in info.value.issues}
    assert found == {(2, "seed"), (3, "size"), (4, "promt"), (8, "backend.region_mode"), (15, "region[2].azimuth"),
                     (18, "place[1].distance"), (24, "export[1].path")}
    lines = info.value.lines()
    # Panorama fields are checked by the world request model: its own line, as `pano` and the server say it.
    assert lines[0].startswith("bad.toml:2: seed 'seven' must be a whole number")
    assert any("did you mean 'prompt'?" in line for line in lines)
    assert "(and 6 more problems" in str(info.value) and "\n" not in str(info.value)


def test_a_toml_syntax_error_names_its_line():
    with pytest.raises(RecipeError, match=r"recipe:3: not valid TOML"):
        parse_recipe('prompt = "x"\nseed = 1\nsize = [256, \n', source="recipe")


def test_values_that_need_the_world_are_checked_too(tmp_path):
    cases = {
        'prompt = "x"\n\n[[refine]]\nscale = 1.3\n': (4, "refine[1]", "not a multiple of 8"),
        'prompt = "x"\nspan = 180\n\n[[region]]\nazimuth = [300, 20]\nprompt = "y"\n': (5, "region[1]", "only a full"),
        'prompt = "x"\n\n[[export]]\nformat = "obj"\n': (4, "export[1]", "obj"),
        'prompt = "x"\n\n[[export]]\nformat = "glb"\noptions = { stepp = 2 }\n': (5, "export[1]", "stepp"),
        'prompt = "x"\nmodality = ["depth", "normal"]\n[backend]\nmodel = "rgbd"\n': (2, "modality", "extra_model"),
        'prompt = "x"\n\n[[place]]\nprompt = "a boat"\ndistance = 3\nmask = "none.png"\n': (6, "place[1].mask",
                                                                                           "does not exist"),
    }
    for text, (line, field, fragment) in cases.items():
        with pytest.raises(RecipeError) as info:
            parse_recipe(text, source="r.toml", base_dir=tmp_path)
        issue = info.value.issues[0]
        assert (issue.line, issue.field) == (line, field) and fragment in issue.message, (text, issue)


def test_dry_run_lists_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    result = run("build", path, "--dry-run")
    assert result.exit_code == 1
    listed = [line for line in result.output.splitlines() if line.startswith(f"{path}:")]
    assert len(listed) == 7
    assert result.output.strip().splitlines()[-1].startswith("Error: 7 problems in")
    plain = run("build", path)
    assert plain.exit_code == 1 and "bad.toml:2: seed 'seven'" in plain.output and "Traceback" not in plain.output


def test_a_recipe_runs_end_to_end_on_the_procedural_backend(tmp_path):
    out = tmp_path / "cabin.glb"
    result = run("build", SCENES / "lakeside-cabin.toml", "--backend", "procedural", *PREVIEW, "-o", out)
    assert result.exit_code == 0, result.output
    assert "placeholder" in result.output and "refine pass 1 skipped" in result.output  # said, not silent
    scene = Scene.open(tmp_path / "cabin")
    operations = [v["operation"] for v in scene.versions]
    assert operations == ["pano", "place", "place", "place"]
    assert all(v["params"]["recipe_sha256"] == load_recipe(SCENES / "lakeside-cabin.toml").digest
               for v in scene.versions[1:])
    assert (tmp_path / "cabin" / "recipe.toml").read_text() == (SCENES / "lakeside-cabin.toml").read_text()
    first, last = scene.load(1), scene.load()
    changed = np.any(first.modalities["depth"] != last.modalities["depth"], axis=-1)
    assert changed.sum() == sum(v["params"]["placement"]["pixels"] for v in scene.versions[1:])
    assert out.is_file() and out.read_bytes()[:4] == b"glTF"


def test_regions_and_extra_exports_run_on_the_procedural_backend(tmp_path):
    out = tmp_path / "lake.glb"
    result = run("build", SCENES / "alpine-lake.toml", "--backend", "procedural", *PREVIEW, "-q", "-o", out)
    assert result.exit_code == 0, result.output
    record = Scene.open(tmp_path / "lake").versions[0]
    assert record["params"]["regions"][0]["azimuth"] == [70.0, 120.0]
    assert out.is_file() and (tmp_path / "lake.ply").is_file()


def test_a_shipped_recipe_runs_end_to_end_on_a_tiny_jointnet(tmp_path, tiny_models):
    out = tmp_path / "lake.glb"
    result = run("build", SCENES / "alpine-lake.toml", "--model", tiny_models["depth"], *PREVIEW, "--steps", 1,
                 "-q", "-o", out)
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "lake")
    assert [v["operation"] for v in scene.versions] == ["pano", "refine"]
    assert scene.versions[0]["backend"]["name"] == "jointnet" and scene.versions[0]["params"]["regions"]
    assert scene.load().size == (512, 128)                   # the recipe's refine pass: scale 2
    assert out.is_file() and (tmp_path / "lake.ply").is_file()


def test_placements_run_on_a_tiny_jointnet(tmp_path, tiny_models):
    # A random tiny model's depth is noise, so nearer "content" would hide the objects: draw them in front.
    recipe = tmp_path / "cabin.toml"
    recipe.write_text((SCENES / "lakeside-cabin.toml").read_text().replace("[[place]]\n", "[[place]]\nocclude = false\n"))
    out = tmp_path / "cabin.glb"
    result = run("build", recipe, "--model", tiny_models["depth"], *PREVIEW, "--steps", 1, "-q", "-o", out)
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "cabin")
    assert [v["operation"] for v in scene.versions] == ["pano", "place", "place", "place", "refine"]
    assert all(v["params"]["placement"]["rgb"] == "jointnet" for v in scene.versions[1:4])
    refined = scene.load()
    assert refined.size == (512, 128) and refined.geometry["fit_ground"] is False  # placements pinned the scale
    assert np.isfinite(refined.modalities["depth"]).all() and out.is_file()


def test_a_failed_step_leaves_no_scene_behind(tmp_path):
    recipe = tmp_path / "cabin.toml"
    recipe.write_text((SCENES / "lakeside-cabin.toml").read_text().replace("lift = 25", "lift = 5000"))
    out = tmp_path / "out" / "cabin.glb"
    result = run("build", recipe, "--backend", "procedural", *PREVIEW, "-q", "-o", out)
    assert result.exit_code == 1
    assert "place[3] ('a red and yellow hot air balloon')" in result.output   # the failing step is named
    assert list((tmp_path / "out").iterdir()) == []                           # no scene, GLB or staging left


def test_three_modality_recipe_with_two_tiny_checkpoints(tmp_path, tiny_models):
    out = tmp_path / "canyon.glb"
    result = run("build", SCENES / "twin-modality-canyon.toml", "--model", tiny_models["depth"],
                 "--extra-model", tiny_models["normal"], "--size", "128x64", "--steps", 1, "-q", "-o", out)
    assert result.exit_code == 0, result.output
    snapshot = Scene.open(tmp_path / "canyon").load()
    assert set(snapshot.modalities) == {"depth", "normal"}
    # Later tasks on the scene load both checkpoints again (from its record) and keep both layers.
    refined = run("refine", tmp_path / "canyon", "--scale", 1, "--steps", 1, "--keep", "modality", "-q")
    assert refined.exit_code == 0, refined.output
    after = Scene.open(tmp_path / "canyon").load()
    assert Scene.open(tmp_path / "canyon").record()["backend"]["settings"]["extra_model"] == str(tiny_models["normal"])
    assert np.array_equal(after.modalities["normal"], snapshot.modalities["normal"])
    wrong = run("build", SCENES / "twin-modality-canyon.toml", "--model", tiny_models["depth"],
                "--extra-model", tiny_models["other_rgb"], "--size", "128x64", "--steps", 1, "-q",
                "-o", tmp_path / "wrong.glb")
    assert wrong.exit_code == 1 and "different RGB branches" in wrong.output


def test_recipe_jobs_run_in_a_batch(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    recipe = tmp_path / "small.toml"
    recipe.write_text((SCENES / "floating-isles.toml").read_text().replace('size = "2048x512"', 'size = "256x64"')
                      + '\n[[export]]\nformat = "ply"\n')
    jobs.write_text(json.dumps({"recipe": "small.toml", "name": "isles", "seed": 5}) + "\n")
    result = run("batch", jobs, "-o", tmp_path / "out", "--backend", "procedural", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    scene = Scene.open(tmp_path / "out" / "isles")
    assert scene.versions[0]["seed"] == 5 and len(scene.versions[0]["params"]["regions"]) == 2
    assert (tmp_path / "out" / "isles.glb").is_file()
    assert (tmp_path / "out" / "isles" / "exports" / "isles.ply").is_file()   # extra exports travel with the scene


def test_an_existing_scene_is_never_overwritten(tmp_path):
    out = tmp_path / "isles.glb"
    assert run("build", SCENES / "floating-isles.toml", "--backend", "procedural", *PREVIEW, "-q", "-o",
               out).exit_code == 0
    again = run("build", SCENES / "floating-isles.toml", "--backend", "procedural", *PREVIEW, "-q", "-o", out)
    assert again.exit_code == 1 and "already holds a scene" in again.output


def test_missing_recipe_file_names_the_fix(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")
