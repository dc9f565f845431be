"""Step counts are limited by what the scheduler can run (issue 26, case 7). `--steps 1000` passed
validation (1..1000) and then failed with "internal error IndexError" (DDIM, published) or, after
minutes, with a false "rerun with --dtype float32" (DPM-Solver++, fast). Now the scheduler's own
tables decide, in milliseconds and before sampling: the refusal names the most steps it can run,
and that many really run."""

from __future__ import annotations

import json

import pytest
import torch
from reliability_support import assert_error, fixture_dir, invoke

from worldgen.backends.jointnet.schedulers import SCHEDULERS, check_steps, make_scheduler
from worldgen.errors import UserInputError


def _config() -> dict:
    return json.loads((fixture_dir() / "base" / "scheduler" / "scheduler_config.json").read_text())


def _run_schedule(scheduler, steps: int) -> torch.Tensor:
    """The whole schedule with a zero noise prediction: what sampling does, minus the model."""
    scheduler.set_timesteps(steps)
    sample = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(sample, t)
        sample = scheduler.step(torch.zeros_like(scaled), t, sample).prev_sample
    return sample


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_the_limit_named_in_the_refusal_really_runs(name):
    scheduler = make_scheduler(name, _config())
    with pytest.raises(UserInputError, match=r"--steps 1000 is more than .* use --steps (\d+) or fewer") as info:
        check_steps(scheduler, 1000)
    most = int(str(info.value).split("use --steps ")[1].split()[0])
    assert 900 < most < 1000
    assert check_steps(scheduler, most) == most
    assert torch.isfinite(_run_schedule(make_scheduler(name, _config()), most)).all()


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_usual_step_counts_pass(name):
    scheduler = make_scheduler(name, _config())
    for steps in (1, 14, 50, 500):
        assert check_steps(scheduler, steps) == steps


@pytest.mark.parametrize("preset", ["published", "fast"])
def test_pano_refuses_1000_steps_before_sampling(tiny_checkpoint, tmp_path, preset):
    result = invoke(["pano", "hills", "--model", tiny_checkpoint, "--preset", preset, "--steps", 1000,
                     "--size", "64x32", "-o", tmp_path / "w.glb", "-q"])
    assert_error(result, "--steps 1000 is more than", "or fewer")
    assert not (tmp_path / "w").exists()


def test_a_recipe_pass_is_checked_before_the_first_pass_runs(tiny_checkpoint, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\nprompt = "hills"\nsteps = 1\n\n[[refine]]\nscale = 1.0\nsteps = 1000\n')
    result = invoke(["build", recipe, "--model", tiny_checkpoint, "--size", "64x32", "-o", tmp_path / "w.glb", "-q"])
    assert_error(result, "r.toml", "steps 1000 is more than")
    assert not (tmp_path / "w").exists()
