"""Tiny JointNet checkpoints for the world-building tests, written once per session.

``depth``: the JointNet helper's tiny checkpoint with its advertised window set to 8 latent cells
(so 256x64 panoramas need several windows). ``normal``: a copy whose modality branch is perturbed
and which says it makes normals: it shares ``depth``'s RGB branch exactly, as stage-1 checkpoints
do. ``other_rgb``: a copy whose RGB branch differs (for the refusal). Copies are cheap; only
``depth`` is built from scratch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

WINDOW = 8


def _perturbed_copy(source: Path, target: Path, branch: str, modality: str, seed: int) -> Path:
    import torch

    from worldgen.backends.jointnet.loading import load_pair, save_pair

    shutil.copytree(source, target)
    pair = load_pair(target)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in getattr(pair, branch).parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
    return save_pair(pair, target, modality=modality)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("tiny-worldbuilding")
    depth = write_tiny_checkpoint(root / "depth", seed=0, sample_size=WINDOW)
    return {"depth": depth,
            "normal": _perturbed_copy(depth, root / "normal", "jointnet", "normal", seed=1),
            "other_rgb": _perturbed_copy(depth, root / "other-rgb", "unet", "normal", seed=2)}


@pytest.fixture(scope="session")
def depth_backend(tiny_models):
    from worldgen.backends.jointnet.spec import load

    return load({"model": str(tiny_models["depth"])})


@pytest.fixture(scope="session")
def tri_backend(tiny_models):
    from worldgen.backends.jointnet.spec import load

    return load({"model": str(tiny_models["depth"]), "extra_model": str(tiny_models["normal"])})


@pytest.fixture(autouse=True, scope="module")
def _plain_cpu_kernels():
    """oneDNN's per-shape kernel set-up costs far more than these tiny convolutions; plain kernels
    give the same results, faster (as in tests/sampler)."""
    import torch

    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous
