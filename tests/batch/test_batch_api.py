"""`worldgen batch` goes through the API: `--backend` and `--preset` mean the same for every job (issue 20)."""

import json

from click.testing import CliRunner

from worldgen.cli.main import cli


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _first_version(scene_dir):
    return json.loads((scene_dir / "scene.json").read_text())["versions"][0]


def test_backend_procedural_builds_recipe_jobs_with_procedural_too(tmp_path, write_jobs):
    """A recipe that names JointNet (with a model that is not there) is built by the batch's
    `--backend procedural`; it used to be built, or here fail, with JointNet, silently."""
    (tmp_path / "harbour.toml").write_text('prompt = "a harbour at dusk"\nsize = "64x16"\n'
                                           '[backend]\nname = "jointnet"\nmodel = "no-such-model"\n')
    jobs = write_jobs(tmp_path, [{"recipe": "harbour.toml", "name": "harbour", "seed": 4}, "rolling hills"])
    out = tmp_path / "out"
    result = _invoke("batch", jobs, "-o", out, "--size", "64x16", "--backend", "procedural", "-q")
    assert result.exit_code == 0, result.output
    assert _first_version(out / "harbour")["backend"]["name"] == "procedural"
    assert _first_version(out / "rolling-hills-0001")["backend"]["name"] == "procedural"
    # Without --backend the recipe's own choice stands (and fails alone, with the reason).
    again = _invoke("batch", jobs, "-o", tmp_path / "auto", "--size", "64x16", "-q")
    summary = json.loads((tmp_path / "auto" / ".batch" / "summary.json").read_text())
    assert again.exit_code == 1 and (summary["done"], summary["failed"]) == (1, 1)
    assert "no-such-model" in summary["failures"][0]["reason"]


def test_preset_fast_reaches_prompt_and_recipe_jobs_as_a_request_value(tmp_path, write_jobs):
    (tmp_path / "lake.toml").write_text('prompt = "a lake"\nsize = "64x16"\n')
    jobs = write_jobs(tmp_path, [{"recipe": "lake.toml", "name": "lake"}, {"prompt": "hills", "name": "hills"}])
    out = tmp_path / "out"
    result = _invoke("batch", jobs, "-o", out, "--backend", "procedural", "--size", "64x16", "--preset", "fast", "-q")
    assert result.exit_code == 0, result.output
    for name in ("lake", "hills"):
        params = _first_version(out / name)["params"]
        assert (params["steps"], params["preset"]) == (14, "fast"), name
