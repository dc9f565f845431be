"""One request model (issue 20): the API, `worldgen pano`, a batch job, a recipe and the server's
request model refuse the same bad values with the same line; each front end only adds where it was
(a JOBS line, a recipe line, "request:"). The line itself is ``WorldRequest``'s."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from worldgen.api import WorldPipeline
from worldgen.batch import JobDefaults, parse_jobs
from worldgen.cli.main import cli
from worldgen.errors import UserInputError
from worldgen.recipes.parse import parse_recipe
from worldgen.recipes.schema import RecipeError
from worldgen.server.schema import parse_job

# (what is wrong, API keywords, pano options, JOBS fields, recipe lines, server request fields)
CASES = [
    ("guidance", {"guidance": 80}, ["--guidance", "80"], {"guidance": 80}, "guidance = 80", {"guidance": 80}),
    ("span", {"span": 0.5}, ["--span", "0.5"], {"span": 0.5}, "span = 0.5", {"span": 0.5}),
    ("steps", {"steps": 0}, ["--steps", "0"], {"steps": 0}, "steps = 0", {"steps": 0}),
    ("size multiple", {"width": 250, "height": 64}, ["--size", "250x64"], {"size": "250x64"},
     'size = "250x64"', {"size": [250, 64]}),
    ("size pixels", {"width": 16384, "height": 8192}, ["--size", "16384x8192"], {"size": "16384x8192"},
     'size = "16384x8192"', {"size": [16384, 8192]}),
    ("seed", {"seed": -1}, ["--seed", "-1"], {"seed": -1}, "seed = -1", {"seed": -1}),
    ("scheduler", {"scheduler": "two words"}, ["--scheduler", "two words"], {"scheduler": "two words"},
     'scheduler = "two words"', {"scheduler": "two words"}),
    ("negative", {"negative_prompt": "n" * 2001}, ["--negative", "n" * 2001], {"negative": "n" * 2001},
     f'negative = "{"n" * 2001}"', {"negative": "n" * 2001}),
]
PROMPT = "a misty fjord"


def _api_line(kwargs: dict) -> str:
    with pytest.raises(UserInputError) as info:
        WorldPipeline.request(kwargs.pop("prompt", PROMPT), **kwargs)
    line = str(info.value)
    assert line and "\n" not in line
    return line


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_every_front_end_refuses_a_bad_value_with_the_same_line(case, tmp_path):
    _what, api, pano, job, recipe, server = case
    line = _api_line(dict(api))

    result = CliRunner().invoke(cli, ["pano", PROMPT, *pano, "--backend", "procedural", "-o", str(tmp_path / "w.glb")])
    # --seed is checked by the option every seeded command shares, which names the flag it was given.
    shown = f"Error: --{line}\n" if _what == "seed" else f"Error: {line}\n"
    assert result.exit_code != 0 and shown in result.output, result.output
    assert not (tmp_path / "w").exists()

    text = json.dumps({"prompt": PROMPT, **job}) + "\n"
    if _what == "seed":  # checked when the file loads (derived names and seeds depend on it), with the line
        with pytest.raises(UserInputError) as info:
            parse_jobs(text, "jsonl", source="jobs.jsonl")
        assert str(info.value) == f"jobs.jsonl:1: {line}"
    else:  # other values when the job runs (one bad job fails alone)
        with pytest.raises(UserInputError) as info:
            parse_jobs(text, "jsonl", source="jobs.jsonl")[0].request()
        assert str(info.value) == line

    with pytest.raises(RecipeError) as info:
        parse_recipe(f'prompt = "{PROMPT}"\n{recipe}\n', source="r.toml")
    assert info.value.lines() == [f"r.toml:2: {line}"]

    with pytest.raises(UserInputError) as info:
        parse_job({"prompt": PROMPT, **server}, job_id="0" * 12)
    assert str(info.value) == f"request: {line}"


def test_a_bad_preset_and_an_empty_prompt_are_refused_alike():
    preset = _api_line({"preset": "quick"})
    assert preset.startswith("preset 'quick'")
    with pytest.raises(UserInputError, match="^" + preset + "$"):
        parse_jobs(f'"{PROMPT}"\n', "jsonl", defaults=JobDefaults(preset="quick"))[0].request()
    with pytest.raises(RecipeError) as info:
        parse_recipe(f'prompt = "{PROMPT}"\n[backend]\npreset = "quick"\n', source="r.toml")
    assert info.value.lines() == [f"r.toml:3: {preset}"]
    with pytest.raises(UserInputError, match="^request: " + preset + "$"):
        parse_job({"prompt": PROMPT, "preset": "quick"}, job_id="0" * 12)

    empty = _api_line({"prompt": "   "})
    assert "empty" in empty
    with pytest.raises(UserInputError, match="^" + empty + "$"):
        parse_jobs('{"prompt": "   "}\n', "jsonl")[0].request()
    with pytest.raises(RecipeError) as info:
        parse_recipe('prompt = "   "\n', source="r.toml")
    assert info.value.lines() == [f"r.toml:1: {empty}"]
    with pytest.raises(UserInputError, match="^request: " + empty + "$"):
        parse_job({"prompt": "   "}, job_id="0" * 12)


def test_the_same_good_values_make_the_same_request():
    """What one front end accepts, the others accept, and they mean the same backend request."""
    values = dict(width=512, height=128, span=180.0, seed=7, steps=3, guidance=4.0, negative_prompt="fog",
                  scheduler="dpm++", preset="fast")
    api = WorldPipeline.request(PROMPT, **values)
    job = parse_jobs(json.dumps({"prompt": PROMPT, "size": "512x128", "span": 180, "seed": 7, "steps": 3,
                                 "guidance": 4, "negative": "fog", "scheduler": "dpm++"}) + "\n", "jsonl",
                     defaults=JobDefaults(preset="fast"))[0].request()
    recipe = parse_recipe(f'prompt = "{PROMPT}"\nsize = "512x128"\nspan = 180\nseed = 7\nsteps = 3\nguidance = 4\n'
                          f'negative = "fog"\nscheduler = "dpm++"\n[backend]\npreset = "fast"\n').request()
    server = parse_job({"prompt": PROMPT, "size": [512, 128], "span": 180, "seed": 7, "steps": 3, "guidance": 4,
                        "negative": "fog", "scheduler": "dpm++", "preset": "fast"}, job_id="0" * 12).request
    assert api == job == recipe == server


@pytest.mark.parametrize("field, value", [("guidance", "7"), ("steps", 2.5), ("span", True), ("negative", 3),
                                          ("scheduler", 5)])
def test_a_value_of_the_wrong_type_is_refused_alike(field, value):
    """Types too are the model's rule (the CLI's options are typed by click, so it is left out)."""
    api = {"negative": "negative_prompt"}.get(field, field)
    line = _api_line({api: value})
    assert str(value) in line or repr(value) in line
    with pytest.raises(UserInputError) as info:
        parse_jobs(json.dumps({"prompt": PROMPT, field: value}) + "\n", "jsonl")[0].request()
    assert str(info.value) == line
    with pytest.raises(RecipeError) as info:
        parse_recipe(f'prompt = "{PROMPT}"\n{field} = {json.dumps(value)}\n', source="r.toml")
    assert info.value.lines() == [f"r.toml:2: {line}"]
    with pytest.raises(UserInputError) as info:
        parse_job({"prompt": PROMPT, field: value}, job_id="0" * 12)
    assert str(info.value) == f"request: {line}"
