"""The published preset samples with DDIM, as the original forces it, even though the SD 2.1-base
folder names PNDMScheduler; the fast preset keeps its DPM-Solver++ (issue 14)."""

import json
import shutil

from worldgen.sampler.presets import resolve_sampling


def _base_naming_pndm(fixture_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(fixture_dir / "base", base)
    config_path = base / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "PNDMScheduler"  # as stabilityai/stable-diffusion-2-1-base ships it
    config_path.write_text(json.dumps(config))
    return base


def test_published_forces_ddim_where_the_base_names_pndm_and_fast_keeps_dpm(fixture_dir, tmp_path):
    from worldgen.backends.jointnet.backend import JointNetBackend

    base = _base_naming_pndm(fixture_dir, tmp_path)
    chosen = {}
    for preset in ("published", "fast"):
        backend = JointNetBackend.from_settings({"model": str(fixture_dir / "model"), "base": str(base),
                                                 "device": "cpu", "preset": preset})
        assert type(backend.pipe.scheduler).__name__ == "PNDMScheduler"  # the folder's own class is loaded
        chosen[preset] = type(backend._scheduler(None)).__name__
    assert chosen == {"published": "DDIMScheduler", "fast": "DPMSolverMultistepScheduler"}
    assert resolve_sampling("published").scheduler_name == "ddim"
    assert resolve_sampling("fast", scheduler="unipc").scheduler_name == "unipc"  # an explicit choice wins
