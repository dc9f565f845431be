"""The CUDA-only fast paths on a real GPU (marked ``gpu``; skipped, with the reason, without CUDA).

The CPU suites check these paths' bookkeeping; here they run for real: CUDA graphs recorded and
replayed, ``torch.compile`` of the UNet blocks through inductor/Triton, and a whole panorama with
the default CUDA speed settings against the plain path. ``benchmarks/time_to_world.py`` and
``benchmarks/speed_memory.py`` run ``pytest -m gpu`` first, so the GPU benchmark run executes them.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from worldgen.sampler import graphs, perf

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the gpu marker's paths)"),
]


@pytest.fixture
def cuda_pair():
    from worldgen.backends.jointnet.tiny import build_tiny_base, build_tiny_pair

    return build_tiny_pair(build_tiny_base(0)["unet"]).to("cuda").eval()


def _inputs(n: int, w: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cpu = (torch.randn(n, 4, 8, w, generator=g), torch.randn(n, 4, 8, w, generator=g), torch.tensor(601),
           torch.randn(n, 7, 32, generator=g))
    return tuple(x.to("cuda") for x in cpu)


@torch.no_grad()
def test_cuda_graphs_record_once_per_shape_and_replay_the_eager_results(cuda_pair):
    plain = copy.deepcopy(cuda_pair)
    perf.speed_up(cuda_pair, perf.SpeedSettings(cuda_graphs=True))
    graphed = cuda_pair.forward
    assert isinstance(graphed, graphs.GraphedCall)
    for width, seed in ((8, 1), (8, 2), (16, 3)):  # two calls of one shape, then a second shape
        inputs = _inputs(2, width, seed)
        for fast, slow in zip(cuda_pair(*inputs), plain(*inputs)):
            torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)
    assert graphed.active, "graph capture failed and fell back to eager"
    assert len(graphed.graphs) == 2


@torch.no_grad()
def test_compiled_blocks_under_inductor_match_eager(cuda_pair):
    if not perf.compile_supported("cuda"):
        pytest.skip("torch.compile's GPU backend needs Triton and compute capability 7.0+")
    plain = copy.deepcopy(cuda_pair)
    blocks = perf.CompiledBlocks(cuda_pair, dynamic=False)
    try:
        inputs = _inputs(2, 8, seed=4)
        for fast, slow in zip(cuda_pair(*inputs), plain(*inputs)):
            torch.testing.assert_close(fast, slow, rtol=1e-3, atol=1e-3)
    finally:
        blocks.remove()


def test_a_panorama_with_the_cuda_speed_settings_matches_the_plain_path(tiny_checkpoint):
    from worldgen.backend import GenerateRequest
    from worldgen.backends.jointnet.spec import load

    request = GenerateRequest(prompt="a lake", width=256, height=64, steps=2, seed=3)
    settings = {"model": str(tiny_checkpoint), "device": "cuda", "dtype": "float32"}
    fast = load(dict(settings, speed="auto")).generate(request)
    plain = load(dict(settings, speed="off")).generate(request)
    np.testing.assert_allclose(fast.image, plain.image, atol=2e-3)
    np.testing.assert_allclose(fast.modalities["depth"], plain.modalities["depth"], atol=2e-3)


def test_one_shot_and_resident_make_the_same_world(tiny_checkpoint):
    """Issue 24: a one-shot process (no cuDNN autotuning, no CUDA graphs) and a warmed-up resident one
    compute the same panorama, up to the float rounding of the kernels each picks."""
    from worldgen.backend import GenerateRequest
    from worldgen.backends.jointnet.spec import load
    from worldgen.world.warmup import warm_up

    request = dict(prompt="a lake", width=256, height=64, steps=2, seed=3)
    settings = {"model": str(tiny_checkpoint), "device": "cuda", "dtype": "float32"}
    one_shot = load(dict(settings, resident=False))
    resident = load(dict(settings, resident=True))
    assert not one_shot.speed.cuda_graphs and not one_shot.speed.cudnn_benchmark
    assert resident.speed.cuda_graphs and resident.speed.cudnn_benchmark
    assert warm_up(resident, width=256, height=64, steps=2) and not warm_up(one_shot)
    worlds = [backend.generate(GenerateRequest(**request)) for backend in (one_shot, resident)]
    np.testing.assert_allclose(worlds[0].image, worlds[1].image, atol=2e-3)
    np.testing.assert_allclose(worlds[0].modalities["depth"], worlds[1].modalities["depth"], atol=2e-3)
