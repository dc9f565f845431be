"""`--preset` means the same in `pano`, `batch` and `build` (issue 14): one resolution, same settings
handed to the backend, same recorded scene, same sampling (steps, scheduler, windows). Since issue 20
the preset is a per-request value (``GenerateRequest.preset``), never a load setting."""

import json

import pytest
from click.testing import CliRunner

from worldgen.backends.jointnet.backend import JointNetBackend
from worldgen.cli.main import cli

SIZE = ("--size", "64x16")


@pytest.fixture
def handed(monkeypatch):
    """Every settings dict a CLI path hands the JointNet backend, and the steps/scheduler each run used."""
    seen = {"settings": [], "runs": []}
    original = JointNetBackend.from_settings.__func__
    original_scheduler = JointNetBackend._scheduler

    def spy_from_settings(cls, settings):
        seen["settings"].append(dict(settings))
        return original(cls, settings)

    def spy_scheduler(self, name, preset=None):
        scheduler = original_scheduler(self, name, preset)
        seen["runs"].append(type(scheduler).__name__)
        return scheduler

    monkeypatch.setattr(JointNetBackend, "from_settings", classmethod(spy_from_settings))
    monkeypatch.setattr(JointNetBackend, "_scheduler", spy_scheduler)
    return seen


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _record(scene_dir):
    version = json.loads((scene_dir / "scene.json").read_text())["versions"][0]
    return version["backend"], version["params"]["steps"], version["params"]["preset"]


@pytest.mark.parametrize("preset,steps,scheduler", [("fast", 14, "DPMSolverMultistepScheduler"),
                                                   ("published", 50, "DDIMScheduler")])
def test_pano_batch_and_build_hand_the_backend_the_same_preset(tmp_path, tiny_checkpoint, handed, preset, steps,
                                                                scheduler, monkeypatch):
    import worldgen.sampler.tiled as tiled

    if preset == "published":  # 50 steps of the tiny model: keep the loop, skip the model's arithmetic
        monkeypatch.setattr(tiled.TiledSampler, "_predict", lambda self, denoise, latents, *a, **k: (
            latents.float() * 0, 1, 1))
    common = ("--model", tiny_checkpoint, "--device", "cpu", "--preset", preset, "--seed", "3", "-q")
    _invoke("pano", "a misty fjord", "-o", tmp_path / "pano" / "w.glb", *SIZE, *common)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a misty fjord", "name": "w", "seed": 3}) + "\n")
    _invoke("batch", jobs, "-o", tmp_path / "batch", *SIZE, *common)
    recipe = tmp_path / "w.toml"
    recipe.write_text('prompt = "a misty fjord"\nsize = "64x16"\nseed = 3\n')
    _invoke("build", recipe, "-o", tmp_path / "build" / "w.glb", *common)

    pano, batch, build = handed["settings"]
    batch.pop("device"), pano.pop("device"), build.pop("device")  # batch names its process's device itself
    # One-shot or resident (issue 24): pano makes one world, batch keeps its model; the rest is the same.
    assert (pano.pop("resident"), batch.pop("resident")) == (False, True)
    build.pop("resident", None)
    for settings in (pano, batch, build):  # the first request's text, encoded while loading (early_text.py)
        settings.pop("text_hint", None)
    assert pano == batch == build
    assert "preset" not in pano  # it travels in each request instead
    # pano, batch, then build twice: its up-front step-count check of the pass (issue 26), then the run
    assert handed["runs"] == [scheduler] * 4
    records = [_record(tmp_path / where / "w") for where in ("pano", "batch", "build")]
    assert records[0] == records[1] == records[2]
    assert records[0][1:] == (steps, preset)  # the preset's step count, in all three


def test_a_recipe_preset_sets_the_steps_as_pano_does(tmp_path):
    from worldgen.recipes import BuildOptions, parse_recipe

    recipe = parse_recipe('prompt = "a lake"\n[backend]\npreset = "fast"\n')
    assert recipe.request().steps == 14
    assert recipe.request(options=BuildOptions(settings={"preset": "published"})).steps == 50  # --preset wins
    assert recipe.request(options=BuildOptions(steps=7)).steps == 7
    with pytest.raises(Exception, match="preset"):
        parse_recipe('prompt = "a lake"\n[backend]\npreset = "quick"\n')


def test_batch_refuses_an_unknown_preset_like_pano(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a lake\n")
    for command in (("pano", "a lake"), ("batch", jobs)):
        result = CliRunner().invoke(cli, [*map(str, command), "--preset", "quick"])
        assert result.exit_code == 2 and "quick" in result.output
