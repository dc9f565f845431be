"""The fast paths compute the same function as the plain ones (tiny models, float32, CPU).

What the GPU benchmark speeds up must not change results beyond float rounding: windows batched
into one call against one window per call, fused QKV projections and channels-last layouts against
the plain model, the compiled forward against the eager one, and the sampler's device-side
bookkeeping against what it replaced.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from worldgen.sampler import graphs, memory, perf


def _inputs(n: int, w: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 4, 8, w, generator=g), torch.randn(n, 4, 8, w, generator=g), torch.tensor(601),
            torch.randn(n, 7, 32, generator=g))


@torch.no_grad()
def test_all_windows_in_one_call_equal_one_window_per_call(tiny_pair):
    x_rgb, x_joint, t, ctx = _inputs(6, seed=1)
    batched = tiny_pair(x_rgb, x_joint, t, ctx)
    for i in range(6):
        single = tiny_pair(x_rgb[i:i + 1], x_joint[i:i + 1], t, ctx[i:i + 1])
        for b, s in zip(batched, single):
            torch.testing.assert_close(b[i:i + 1], s, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_guidance_for_all_windows_in_one_forward_equals_separate_halves(tiny_pair):
    x_rgb, x_joint, t, ctx = _inputs(4, seed=2)
    cond, uncond = ctx[:1], torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(3))
    guided = tiny_pair.guided(x_rgb, x_joint, t, cond, uncond, 7.5)
    c = tiny_pair(x_rgb, x_joint, t, cond.expand(4, -1, -1))
    u = tiny_pair(x_rgb, x_joint, t, uncond.expand(4, -1, -1))
    for g, ci, ui in zip(guided, c, u):
        torch.testing.assert_close(g, ui + 7.5 * (ci - ui), rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_fused_qkv_and_channels_last_compute_the_same_function(tiny_pair):
    plain = copy.deepcopy(tiny_pair)
    fast = perf.speed_up(tiny_pair, perf.SpeedSettings(channels_last=True, fuse_qkv=True))
    assert any(getattr(m, "fused_projections", False) for m in fast.modules())
    assert next(p for p in fast.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    for seed in (4, 5):  # fresh random inputs each time: the same function, not one lucky input
        x_rgb, x_joint, t, ctx = _inputs(3, w=16, seed=seed)
        for a, b in zip(fast(x_rgb, x_joint, t, ctx), plain(x_rgb, x_joint, t, ctx)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    perf.speed_up(fast, perf.SpeedSettings(fuse_qkv=True))  # a second backend on the same pipe: no re-fusing
    assert sum(1 for m in fast.modules() if hasattr(m, "to_qkv")) == sum(
        1 for m in plain.modules() if type(m).__name__ == "Attention" and not m.is_cross_attention)


@torch.no_grad()
def test_the_compiled_forward_is_one_graph_for_every_window_batch_and_width(tiny_pair):
    """Traced once with dynamic shapes (the compiler backend here is 'eager': tracing, no codegen),
    it must give the eager results for a 64x64-like square window batch, the wide whole-panorama
    window, a channel slice of the stacked latent and an expanded text batch, without recompiling."""
    from torch._dynamo.utils import counters

    eager = copy.deepcopy(tiny_pair)
    tiny_pair.forward = perf.CompiledCall(tiny_pair.forward, backend="eager", dynamic=True, fullgraph=True)
    counters.clear()
    stacked = torch.randn(2, 8, 8, 32)
    cases = [_inputs(4, seed=6), _inputs(2, w=32, seed=7),
             (stacked[:, :4], stacked[:, 4:], torch.tensor(21), torch.randn(1, 7, 32).expand(2, -1, -1))]
    for x_rgb, x_joint, t, ctx in cases:
        for a, b in zip(tiny_pair(x_rgb, x_joint, t, ctx), eager(x_rgb, x_joint, t, ctx)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert tiny_pair.forward.active
    assert counters["stats"]["unique_graphs"] == 1


def test_a_failing_compiler_falls_back_to_eager_and_input_errors_still_raise():
    def broken_compiler(gm, example_inputs):
        raise RuntimeError("no working compiler here")

    def double(x):
        if x.shape[-1] == 0:
            raise ValueError("empty input")
        return x * 2

    working = perf.CompiledCall(double, backend="eager")
    with pytest.raises(ValueError, match="empty input"):
        working(torch.ones(2, 0))
    assert working.active                   # the input was wrong, not the compiler

    def triple(x):  # its own code object: dynamo keeps its decisions per code object
        return x * 3

    call = perf.CompiledCall(triple, backend=broken_compiler)
    x = torch.randn(3)
    torch.testing.assert_close(call(x), x * 3)
    assert not call.active and "no working compiler" in str(call.error)
    torch.testing.assert_close(call(x + 1), (x + 1) * 3)  # eager from now on


def test_speed_settings_per_device():
    cpu = perf.SpeedSettings.for_device("cpu")
    assert not (cpu.compile or cpu.channels_last or cpu.fuse_qkv or cpu.cuda_graphs)
    assert perf.SpeedSettings.named("off", "cpu") == perf.SpeedSettings()
    cuda = perf.SpeedSettings.named("auto", "cuda")
    assert cuda.cuda_graphs and cuda.attention == "cudnn" and not cuda.compile
    assert not perf.SpeedSettings.named("eager", "cuda").cuda_graphs
    assert perf.SpeedSettings.named(cuda, "cuda") is cuda
    from worldgen.errors import UserInputError

    with pytest.raises(UserInputError, match="auto, eager, compile, off"):
        perf.SpeedSettings.named("turbo", "cpu")


def test_one_forward_wrapper_at_a_time_and_graphs_leave_cpu_calls_alone(tiny_pair):
    kind = type(tiny_pair).forward
    perf.speed_up(tiny_pair, perf.SpeedSettings(cuda_graphs=True))
    graphed = tiny_pair.forward
    assert isinstance(graphed, graphs.GraphedCall)
    perf.speed_up(tiny_pair, perf.SpeedSettings(cuda_graphs=True))
    assert tiny_pair.forward is graphed                      # same settings: the same recorder
    perf.speed_up(tiny_pair, perf.SpeedSettings(cuda_graphs=True, attention="flash"))
    assert tiny_pair.forward is not graphed                  # other kernels: graphs recorded afresh
    graphed = tiny_pair.forward
    x_rgb, x_joint, t, ctx = _inputs(2, seed=8)
    with torch.no_grad():
        out = tiny_pair(x_rgb, x_joint, t, ctx)              # CPU tensors: no graph, the plain forward
        assert not graphed.graphs and graphed.active
        perf.speed_up(tiny_pair, perf.SpeedSettings(channels_last=True))
        assert "forward" not in tiny_pair.__dict__ and type(tiny_pair).forward is kind
        conv = tiny_pair.unet.conv_in.weight
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
        perf.speed_up(tiny_pair, perf.SpeedSettings())       # and back: no layout left behind
        assert tiny_pair.unet.conv_in.weight.is_contiguous()
        for a, b in zip(out, tiny_pair(x_rgb, x_joint, t, ctx)):
            torch.testing.assert_close(a, b)


def test_memory_planning_follows_free_memory(tiny_pair, monkeypatch):
    assert memory.window_batch_for(tiny_pair, (64, 64), 2, "cpu") is None  # no limit known off CUDA
    per_window = memory.pair_window_bytes(tiny_pair, (64, 64), 4)
    monkeypatch.setattr(memory, "free_bytes", lambda device: memory.DEFAULT_RESERVE + 10 * 2 * per_window)
    assert memory.window_batch_for(tiny_pair, (64, 64), 2, "cuda") == 10
    assert memory.window_batch_for(tiny_pair, (64, 64), 1, "cuda") == 20   # no guidance: half the rows
    monkeypatch.setattr(memory, "free_bytes", lambda device: 0)
    assert memory.window_batch_for(tiny_pair, (64, 64), 2, "cuda") == 1    # never zero: the OOM halving is the backstop
    vae = torch.nn.Conv2d(3, 3, 1)
    assert memory.vae_batch_for(vae, 512, 2, "cuda") == 1
    monkeypatch.setattr(memory, "free_bytes", lambda device: 1 << 40)
    assert memory.vae_batch_for(vae, 512, 2, "cuda", largest=8) == 8


def test_offloading_leaves_cpu_runs_alone():
    module = torch.nn.Linear(2, 2)
    with memory.offloaded(module, "cpu") as inside:
        assert inside is module and module.weight.device.type == "cpu"
    assert module.weight.device.type == "cpu"


# ---- the sampler and backend around the model --------------------------------------------------

def _ddim():
    from worldgen.backends.jointnet.schedulers import make_scheduler

    return make_scheduler("ddim", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                                   "num_train_timesteps": 1000, "clip_sample": False, "set_alpha_to_one": False,
                                   "steps_offset": 1, "prediction_type": "epsilon"})


def test_the_recipe_marks_which_steps_use_guidance():
    from worldgen.sampler.tiled import TiledSampler, TilingRecipe

    seen = []

    def denoise(x, t, windows):
        seen.append((windows.step, windows.guided))
        return 0.1 * x

    TiledSampler(TilingRecipe(window=(8, 8), global_fraction=0.0, guidance_fraction=0.5)).sample(
        denoise, _ddim(), shape=(1, 4, 8, 32), steps=4, seed=0)
    assert seen == [(0, True), (1, True), (2, False), (3, False)]


def test_layouts_reach_the_device_once_per_run():
    from worldgen.sampler.tiled import TiledSampler, TilingRecipe

    sampler = TiledSampler(TilingRecipe(window=(8, 8)))
    layout = sampler.recipe.layout(32, 8, (3, 0))
    first = sampler._layout_tensors(layout, torch.device("cpu"))
    again = sampler._layout_tensors(sampler.recipe.layout(32, 8, (3, 0)), torch.device("cpu"))
    assert first[0] is again[0] and first[1] is again[1]
    assert torch.equal(first[0], layout.index()) and torch.equal(first[1], layout.weights())


def _generate(backend, **kw):
    from worldgen.backend import GenerateRequest

    fields = dict(prompt="a lake", width=256, height=64, steps=4, seed=3)
    fields.update(kw)
    return backend.generate(GenerateRequest(**fields))


def test_one_window_per_call_gives_the_same_panorama_as_all_at_once(tiny_model):
    from worldgen.backends.jointnet.spec import load

    all_at_once = _generate(load({"model": str(tiny_model)}), steps=2)
    one_by_one = _generate(load({"model": str(tiny_model), "window_batch": 1}), steps=2)
    np.testing.assert_allclose(all_at_once.image, one_by_one.image, atol=2e-5)
    np.testing.assert_allclose(all_at_once.modalities["depth"], one_by_one.modalities["depth"], atol=2e-5)


def test_the_fast_preset_runs_fewer_rows_and_drops_guidance_late(tiny_model, monkeypatch):
    from worldgen.backends.jointnet.spec import load
    from worldgen.sampler.presets import FAST

    backend = load({"model": str(tiny_model), "preset": "fast"})
    assert backend.settings()["preset"] == "fast"
    pair, rows = backend.pipe.jointnet, []
    original = pair.forward

    def counting(x_rgb, *args, **kwargs):
        rows.append(x_rgb.shape[0])
        return original(x_rgb, *args, **kwargs)

    monkeypatch.setattr(pair, "forward", counting)
    result = _generate(backend, steps=FAST.steps)
    assert np.isfinite(result.image).all()
    windows = -(-(256 // 8) // FAST.stride_cells(8))   # 32 latent columns at stride 8: 4 windows
    global_steps, guided_steps = math.ceil(FAST.global_fraction * FAST.steps), FAST.guided_steps(FAST.steps)
    assert (windows, global_steps, guided_steps) == (4, 2, 7)
    # guided steps: 2 rows per window (+ 2 for the whole panorama early on); later steps: 1 per window
    expected = global_steps * 2 + guided_steps * 2 * windows + (FAST.steps - guided_steps) * windows
    assert sum(rows) == expected and max(rows) == 2 * windows
    published_rows = 50 * 2 * (256 // 8 // 4) + 20 * 2
    assert sum(rows) < 0.15 * published_rows
