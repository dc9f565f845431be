"""The compiled UNet blocks (issue 14) compute the plain function and fall back to it.

Compilation here uses dynamo + AOTAutograd with the 'aot_eager' backend: the same tracing,
decompositions and graph caching as inductor, without generating kernels (inductor's CPU codegen
takes minutes on a tiny model). The GPU benchmark (benchmarks/speed_memory.py, forward_check)
compares inductor's kernels with a float32 reference on the full-size model.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from worldgen.sampler import perf


def _inputs(n: int, w: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 4, 8, w, generator=g), torch.randn(n, 4, 8, w, generator=g),
            torch.tensor(float(seed * 37 % 1000)), torch.randn(n, 7, 32, generator=g))


def _block_signatures(pair, calls) -> set:
    """(class, input shape, parameter shapes) of every compiled-block call the eager pair makes."""
    seen = set()

    def hook(module, args, kwargs):
        x = args[0] if args else next(iter(kwargs.values()))
        seen.add((type(module).__name__, tuple(x.shape), tuple(tuple(p.shape) for p in module.parameters())))

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in pair.modules()
               if type(m).__name__ in perf.COMPILED_BLOCKS]
    with torch.no_grad():
        for args in calls:
            pair(*args)
    for h in handles:
        h.remove()
    return seen


@torch.no_grad()
def test_compiled_blocks_give_the_eager_results_with_one_graph_per_block_shape(tiny_pair):
    from torch._dynamo.utils import counters

    eager = copy.deepcopy(tiny_pair)
    blocks = perf.CompiledBlocks(tiny_pair, backend="aot_eager", dynamic=False)
    assert {type(b).__name__ for b in blocks.blocks} == set(perf.COMPILED_BLOCKS)
    counters.clear()
    # A square window batch, the wide whole-panorama window, then the first shape again with fresh
    # values (a cache hit must not reuse the old inputs).
    calls = [_inputs(4, 8, seed=1), _inputs(2, 32, seed=2), _inputs(4, 8, seed=3)]
    graphs = []
    for args in calls:
        for a, b in zip(tiny_pair(*args), eager(*args)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        graphs.append(counters["stats"]["unique_graphs"])
    assert blocks.active
    assert graphs[2] == graphs[1]  # shapes seen before: no new graph
    # About one graph per distinct block shape (dynamo also tells some call sites apart): the two
    # branches and the repeated blocks share them. Without sharing, two window shapes would need
    # two graphs per block.
    shapes = _block_signatures(eager, calls)
    assert len(shapes) <= graphs[1] <= len(blocks.blocks) < 2 * len(blocks.blocks)


@torch.no_grad()
def test_a_failing_compiler_sends_every_block_back_to_eager_and_bad_input_still_raises(tiny_pair):
    eager = copy.deepcopy(tiny_pair)
    working = perf.CompiledBlocks(copy.deepcopy(tiny_pair), backend="eager", dynamic=False)
    resnet = next(b for b in working.blocks if type(b).__name__ == "ResnetBlock2D")
    with pytest.raises(RuntimeError):
        resnet(torch.randn(1, 3, 8, 8), None)  # wrong channels: the eager block raises too
    assert working.active

    def broken(gm, example_inputs):
        raise RuntimeError("no working compiler here")

    torch._dynamo.reset()  # dynamo keeps compiled code per code object: start from none
    blocks = perf.CompiledBlocks(tiny_pair, backend=broken, dynamic=False)
    args = _inputs(2, 16, seed=4)
    for a, b in zip(tiny_pair(*args), eager(*args)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not blocks.active and "no working compiler" in str(blocks.error)
    args = _inputs(3, 8, seed=5)  # a new shape: no second compile attempt, still the eager function
    for a, b in zip(tiny_pair(*args), eager(*args)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_speed_up_puts_block_compilation_on_and_takes_it_off(tiny_pair):
    compiled = perf.SpeedSettings(compile=True, channels_last=True)
    perf.speed_up(tiny_pair, compiled)
    blocks = tiny_pair._worldgen_blocks
    assert all("forward" in b.__dict__ for b in blocks.blocks)
    assert "forward" not in tiny_pair.__dict__            # no CUDA graphs asked: the pair's own forward
    perf.speed_up(tiny_pair, compiled)
    assert tiny_pair._worldgen_blocks is blocks            # same settings: same compiled blocks
    perf.speed_up(tiny_pair, perf.SpeedSettings(compile=True, compile_scope="pair"))
    assert "_worldgen_blocks" not in tiny_pair.__dict__
    assert all("forward" not in b.__dict__ for b in blocks.blocks)
    assert isinstance(tiny_pair.forward, perf.CompiledCall)
    perf.speed_up(tiny_pair, perf.SpeedSettings(compile=True, cuda_graphs=True))
    assert isinstance(tiny_pair.forward, perf.GraphedCall) and tiny_pair.forward.eager == type(tiny_pair).forward.__get__(tiny_pair)
    perf.speed_up(tiny_pair, perf.SpeedSettings())
    assert "forward" not in tiny_pair.__dict__ and "_worldgen_blocks" not in tiny_pair.__dict__
    assert tiny_pair.unet.conv_in.weight.is_contiguous()


def test_compile_is_opt_in_and_only_where_triton_runs(monkeypatch):
    assert perf.SpeedSettings.named("compile", "cpu") == perf.SpeedSettings.for_device("cpu")
    assert not perf.SpeedSettings.named("auto", "cuda").compile      # never a silent default
    monkeypatch.setattr(perf, "compile_supported", lambda device: True)
    settings = perf.SpeedSettings.named("compile", "cuda")
    assert settings.compile and settings.channels_last and settings.cuda_graphs
    assert settings.compile_scope == "blocks" and settings.dynamic is False
    monkeypatch.setattr(perf, "compile_supported", lambda device: False)
    assert not perf.SpeedSettings.named("compile", "cuda").compile   # e.g. no Triton: eager, as "auto"


def test_the_compile_cache_lives_in_worldgen_home_unless_the_user_chose_one(monkeypatch, tmp_path):
    import torch._dynamo.config as dynamo_config

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("WORLDGEN_HOME", str(tmp_path / "home"))
    assert perf.compile_cache_dir() == tmp_path / "home" / "compile-cache"
    perf._inductor_defaults()
    import os

    assert Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) == tmp_path / "home" / "compile-cache"
    assert dynamo_config.recompile_limit >= perf.RECOMPILE_LIMIT
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    perf._inductor_defaults()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    assert perf.compile_cache_dir() == tmp_path / "mine"
