"""worldgen.numerics: NaN/inf in a step is found, a half-precision step is redone in float32, and a
fault float32 cannot fix stops the run with one line of advice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldgen.errors import ModelError
from worldgen.numerics import (SAMPLING_ADVICE, NumericalError, PrecisionGuard, all_finite, check_finite,
                               float32_modules, is_reduced_precision, redo_in_float32)


@pytest.mark.parametrize("value, finite", [
    (torch.ones(3), True),
    (torch.tensor([1.0, float("nan")]), False),
    (torch.tensor([1.0, float("inf")], dtype=torch.float16), False),
    (torch.tensor([65504.0], dtype=torch.float16) * 2, False),  # float16 overflow
    (torch.tensor([1, 2]), True),  # integers cannot be NaN
    (np.array([0.5, np.inf]), False),
    (np.float32(np.nan), False),
    (float("nan"), False),
    (3, True),
    (None, True),
    ((torch.ones(2), {"eps": torch.tensor([float("-inf")])}), False),
    ([torch.ones(2), np.zeros(3)], True),
])
def test_all_finite(value, finite):
    assert all_finite(value) is finite


def test_check_finite_raises_one_line_with_the_fix():
    good = torch.ones(2)
    assert check_finite(good, "x") is good
    with pytest.raises(NumericalError) as caught:
        check_finite(torch.tensor([float("nan")]), "the denoising step\nat t=981", SAMPLING_ADVICE)
    message = str(caught.value)
    assert isinstance(caught.value, ModelError)  # the CLI turns it into exit code 1
    assert "\n" not in message and "NaN" in message and "--dtype float32" in message


def _overflowing_step(calls: list):
    """x * 1000 * 1000 / 1e6: inf in float16 (max 65504), exactly x in float32."""
    x = torch.tensor([3.0, 5.0])

    def step(dtype):
        calls.append(dtype)
        y = x.to(dtype) * 1000
        return (y * 1000 / 1e6).float()

    return step


def test_a_half_precision_overflow_is_redone_in_float32():
    calls = []
    result = redo_in_float32(_overflowing_step(calls), torch.float16, "step")
    assert calls == [torch.float16, torch.float32]
    assert torch.equal(result, torch.tensor([3.0, 5.0]))


def test_a_fault_float32_also_makes_stops_with_advice():
    calls = []

    def step(dtype):
        calls.append(dtype)
        return torch.tensor([0.0], dtype=dtype) / 0.0

    with pytest.raises(NumericalError, match="in float16 and again in float32; rerun with"):
        PrecisionGuard("the denoising step", torch.float16, SAMPLING_ADVICE).run(step)
    assert calls == [torch.float16, torch.float32]


def test_a_fault_in_float32_is_not_retried():
    calls = []

    def step(dtype):
        calls.append(dtype)
        return torch.tensor([float("nan")])

    with pytest.raises(NumericalError, match=r"step 1\) produced NaN or infinite values in float32"):
        PrecisionGuard("training step", torch.float32).run(step)
    assert calls == [torch.float32]


def test_finite_steps_run_once_in_their_own_precision():
    calls = []
    guard = PrecisionGuard("step", torch.bfloat16)
    for _ in range(3):
        guard.run(lambda dtype: calls.append(dtype) or torch.ones(2, dtype=dtype))
    assert calls == [torch.bfloat16] * 3 and guard.redos == 0 and guard.steps == 3


def test_the_guard_stays_in_float32_after_repeated_faults():
    calls = []
    guard = PrecisionGuard("step", torch.float16, sticky_after=2)
    step = _overflowing_step(calls)
    for _ in range(4):
        guard.run(step)
    assert calls == [torch.float16, torch.float32, torch.float16, torch.float32, torch.float32, torch.float32]
    assert guard.redos == 2 and guard.dtype == torch.float32


def test_a_redo_replays_the_same_random_draws():
    """A step that draws noise must redo with the SAME noise, or the redo changes the result."""
    draws = []

    def step(dtype):
        noise = torch.randn(4)
        draws.append(noise)
        return noise.to(dtype) * 1e6 if dtype == torch.float16 else noise

    torch.manual_seed(0)
    PrecisionGuard("step", torch.float16).run(step)
    assert len(draws) == 2 and torch.equal(draws[0], draws[1])


def test_float32_modules_restores_the_exact_weights():
    layer = torch.nn.Linear(4, 4).to(torch.float16)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with float32_modules(layer):
        assert layer.weight.dtype == torch.float32
        out = layer(torch.ones(1, 4))
        assert out.dtype == torch.float32
    assert all(v.dtype == torch.float16 and torch.equal(v, before[k]) for k, v in layer.state_dict().items())


def test_float32_modules_restores_even_when_the_block_fails():
    layer = torch.nn.Linear(2, 2).to(torch.bfloat16)
    with pytest.raises(RuntimeError):
        with float32_modules(layer):
            raise RuntimeError("boom")
    assert layer.weight.dtype == torch.bfloat16


def test_guarding_a_real_half_precision_model_step():
    """The guard around a module call: weights stay half, the faulty step is recomputed in float32."""
    layer = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[300.0, 300.0], [1.0, -1.0]]))
    layer = layer.to(torch.float16)
    x = torch.tensor([[200.0, 200.0]])  # 300*200*2 = 120000 > float16 max

    def step(dtype):
        if dtype == torch.float32:
            with float32_modules(layer):
                return layer(x.float())
        return layer(x.to(dtype))

    guard = PrecisionGuard("window forward", torch.float16)
    out = guard.run(step)
    assert guard.redos == 1 and torch.isfinite(out).all() and out[0, 0].item() == 120000.0
    assert layer.weight.dtype == torch.float16


@pytest.mark.parametrize("dtype, reduced", [(torch.float16, True), (torch.bfloat16, True), (torch.float32, False),
                                            ("float16", True), ("torch.bfloat16", True), ("float64", False)])
def test_is_reduced_precision(dtype, reduced):
    assert is_reduced_precision(dtype) is reduced


# ---- where the guard must be wired in: the tiled sampler and the training loop ---------------------------

def test_the_sampler_never_returns_nan_latents():
    """A model that produces NaN (an fp16 overflow that float32 would not fix, or a broken checkpoint)
    must stop the run with a NumericalError, not hand NaN latents on to decoding and the scene."""
    from diffusers import DDIMScheduler

    from worldgen.sampler.tiled import TiledSampler, TilingRecipe

    def denoise(x, t, windows):
        return torch.full_like(x, float("nan"))

    sampler = TiledSampler(TilingRecipe(window=(8, 8)))
    with pytest.raises(NumericalError) as caught:
        sampler.sample(denoise, DDIMScheduler(), shape=(1, 4, 8, 16), steps=2, seed=0)
    assert "\n" not in str(caught.value) and "--dtype float32" in str(caught.value)


def test_the_sampler_redoes_a_half_precision_overflow_or_stops():
    """NaN only in float16: the step is redone in float32 (finite result) or the run stops with advice."""
    from diffusers import DDIMScheduler

    from worldgen.sampler.tiled import TiledSampler, TilingRecipe

    def denoise(x, t, windows):
        return torch.full_like(x, float("inf")) if x.dtype == torch.float16 else torch.zeros_like(x)

    sampler = TiledSampler(TilingRecipe(window=(8, 8)))
    try:
        latents = sampler.sample(denoise, DDIMScheduler(), shape=(1, 4, 8, 16), steps=2, seed=0, dtype=torch.float16)
    except NumericalError as exc:
        assert "\n" not in str(exc)
    else:
        assert torch.isfinite(latents).all()


def test_training_stops_with_advice_when_the_loss_is_not_finite(tmp_path, monkeypatch):
    """A NaN loss must not be back-propagated into the weights and saved as a checkpoint."""
    from reliability_support import fixture_dir, invoke, writable_copy
    from PIL import Image

    from worldgen.training import loop

    def nan_loss(*args, **kwargs):
        real = real_loss(*args, **kwargs)
        return real * float("nan")

    real_loss = loop.joint_loss
    monkeypatch.setattr(loop, "joint_loss", nan_loss)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * (i + 1), np.uint8)).save(data / f"img{i}.png")
        np.save(data / f"img{i}.depth.npy", np.full((32, 32), 0.5, np.float32))
        (data / f"img{i}.txt").write_text("a picture\n")
    out = tmp_path / "run"
    result = invoke(["train", "--modality", "depth", "--base", writable_copy(fixture_dir() / "base", tmp_path / "base"),
                     "--data", data, "--out", out, "--resolution", "32", "--batch-size", "1", "--num-workers", "0",
                     "--warmup-steps", "0", "--steps", "2", "--checkpoint-every", "1", "--validation-every", "0",
                     "--validation-steps", "1", "--report-to", "none", "-q"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and ("NaN" in errors[0] or "not finite" in errors[0]) and "--lr" in errors[0]
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    assert not (out / "model").exists()
