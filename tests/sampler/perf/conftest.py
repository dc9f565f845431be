"""Tiny JointNet models for the CPU equivalence tests of the fast paths (worldgen.sampler.perf)."""

from __future__ import annotations

from pathlib import Path

import pytest

WINDOW = 8  # latent cells per window: a 256x64 px panorama then needs 8 windows per step


@pytest.fixture(autouse=True)
def _cpu_settings():
    """One thread (tiny models thrash on a busy 2-core machine) and plain kernels (oneDNN's per-shape
    set-up costs more than these convolutions); both give the same results, faster."""
    import torch

    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


@pytest.fixture
def tiny_pair():
    """A fresh tiny pair (exchange layers non-zero), float32, eval mode."""
    from worldgen.backends.jointnet.tiny import build_tiny_base, build_tiny_pair

    return build_tiny_pair(build_tiny_base(0)["unet"])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("perf-tiny") / "model", seed=0, sample_size=WINDOW)
