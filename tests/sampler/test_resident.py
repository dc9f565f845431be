"""One-shot or resident (issue 24): `worldgen pano` loads its backend without warm-up costs
(no cuDNN autotuning, no CUDA graphs); `serve`, `batch` and the API keep them and pay them once,
before the first request. Spied on CPU (the switch, not the GPU's timings); results are the same
either way."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from worldgen.backend import GenerateRequest
from worldgen.backends.jointnet.backend import JointNetBackend
from worldgen.sampler import perf


@pytest.fixture
def resident_seen(monkeypatch):
    """Every ``resident`` value a JointNet backend was built with, in order."""
    seen = []
    original = JointNetBackend.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("resident", True))
        original(self, *args, **kwargs)

    monkeypatch.setattr(JointNetBackend, "__init__", spy)
    return seen


@pytest.fixture
def warm_ups(monkeypatch):
    """Make warm-up 'pay' on CPU and record the requests a warm-up generates (instead of running them)."""
    made = []
    monkeypatch.setattr(JointNetBackend, "warm_up_pays", property(lambda self: self.resident))

    def fake_generate(self, request, progress=None):
        made.append(request)

    monkeypatch.setattr(JointNetBackend, "generate", fake_generate)
    return made


@pytest.mark.parametrize("name", [None, "auto", "eager", "compile"])
def test_one_shot_settings_have_no_autotuning_and_no_graphs(name):
    one_shot = perf.SpeedSettings.named(name, "cuda", resident=False)
    resident = perf.SpeedSettings.named(name, "cuda", resident=True)
    assert not one_shot.cudnn_benchmark and not one_shot.cuda_graphs
    assert resident.cudnn_benchmark
    assert resident.cuda_graphs == (name != "eager")
    assert one_shot.fuse_qkv and one_shot.attention == "cudnn"  # the free speed-ups stay


def test_pano_cli_is_one_shot(tmp_path, tiny_models, resident_seen):
    from worldgen.cli.main import cli

    result = CliRunner().invoke(cli, ["pano", "a room", "-o", str(tmp_path / "room.glb"), "--model",
                                      str(tiny_models["generate"]), "--size", "128x64", "--steps", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert resident_seen == [False]


def test_api_is_resident_and_warms_up_once(tiny_models, resident_seen, warm_ups):
    from worldgen.api import WorldPipeline

    pipe = WorldPipeline.from_pretrained(str(tiny_models["generate"]))
    assert pipe.settings["resident"] is True
    assert pipe.warm_up(width=256, height=64, preset="fast") is True
    assert resident_seen == [True]
    assert [(r.width, r.height, r.preset) for r in warm_ups] == [(256, 64, "fast")]


def test_one_shot_api_skips_the_warm_up(tiny_models, resident_seen, warm_ups):
    from worldgen.api import WorldPipeline

    pipe = WorldPipeline.from_pretrained(str(tiny_models["generate"]), resident=False)
    assert pipe.warm_up() is False and warm_ups == []
    assert resident_seen == [False]


def test_procedural_backend_never_sees_the_flag():
    from worldgen.api import WorldPipeline

    notes = []
    pipe = WorldPipeline.from_pretrained("procedural", resident=False, note=notes.append)
    assert "resident" not in pipe.settings and notes == []


def test_server_loads_resident_and_warms_up_before_any_request(tiny_models, resident_seen, warm_ups):
    from worldgen.registry import get_registry
    from worldgen.server.worlds import load_pipeline

    load_pipeline(get_registry().backend("jointnet"), {"model": str(tiny_models["generate"])}, "fast")
    assert resident_seen == [True]
    assert [(r.width, r.height, r.preset) for r in warm_ups] == [(2048, 512, "fast")]


def test_batch_is_resident_and_warms_up_for_its_first_job(tmp_path, tiny_models, resident_seen, warm_ups):
    from worldgen.api import WorldPipeline
    from worldgen.batch import PanoWorldMaker

    pipe = WorldPipeline.from_pretrained(str(tiny_models["generate"]))  # what `worldgen batch` builds
    maker = PanoWorldMaker(pipe.spec, pipe.settings)
    first = GenerateRequest(prompt="x", width=512, height=128, preset="fast")
    maker.backend(first)
    maker.backend(first)  # loaded: no second warm-up
    assert resident_seen == [True]
    assert [(r.width, r.height) for r in warm_ups] == [(512, 128)]


def test_a_bad_resident_value_is_one_clear_error(tiny_models):
    from worldgen.backends.jointnet.spec import load
    from worldgen.errors import UserInputError

    with pytest.raises(UserInputError, match="resident must be true or false"):
        load({"model": str(tiny_models["generate"]), "resident": "yes"})


def test_results_are_identical_either_way(tiny_models):
    from worldgen.backends.jointnet.spec import load

    request = dict(prompt="a lake", width=128, height=64, steps=2, seed=3, preset="fast")
    worlds = [load({"model": str(tiny_models["generate"]), "resident": mode}).generate(GenerateRequest(**request))
              for mode in (True, False)]
    assert np.array_equal(worlds[0].image, worlds[1].image)
    assert all(np.array_equal(worlds[0].modalities[k], worlds[1].modalities[k]) for k in worlds[0].modalities)
