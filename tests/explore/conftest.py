"""Tiny JointNet checkpoints (generation and inpainting) and small synthetic bands for the explore tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest


def _exporter_scenes():
    """tests/exporters/conftest.py (the synthetic room with known geometry), loaded under its own name."""
    path = Path(__file__).resolve().parents[1] / "exporters" / "conftest.py"
    spec = importlib.util.spec_from_file_location("explore_room_scenes", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its ``kit`` fixture returns itself through sys.modules
    spec.loader.exec_module(module)
    return module


ROOM = _exporter_scenes()

WINDOW = 8


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("tiny-explore")
    return {kind: write_tiny_checkpoint(root / kind, seed=0, inpaint=kind == "inpaint", sample_size=WINDOW)
            for kind in ("generate", "inpaint")}


@pytest.fixture(scope="session")
def inpaint_backend(tiny_models):
    from worldgen.backends.jointnet.spec import load

    return load({"model": str(tiny_models["inpaint"])})


@pytest.fixture(scope="session")
def generate_backend(tiny_models):
    from worldgen.backends.jointnet.spec import load

    return load({"model": str(tiny_models["generate"])})


@pytest.fixture(autouse=True, scope="module")
def _plain_cpu_kernels():
    import torch

    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous


class EditSpy:
    """Wraps a backend: records every ``edit`` call's mask and view, and the result."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[dict] = []
        self.modality = backend.modality

    def __getattr__(self, name):  # every other task goes to the backend itself
        return getattr(self.backend, name)

    def edit(self, request, snapshot, progress=None):
        result = self.backend.edit(request, snapshot, progress)
        self.calls.append({"mask": request.mask.copy(), "layers": request.layers, "view": snapshot, "result": result,
                           "method": request.method})
        return result


@pytest.fixture
def room():
    return ROOM.room_snapshot


def assert_kept(call: dict) -> None:
    """The inpainted view keeps every pixel outside its mask exactly, in both layers."""
    keep = ~call["mask"]
    view, result = call["view"], call["result"]
    assert np.array_equal(result.image[keep], view.image[keep])
    for name, layer in view.modalities.items():
        assert np.array_equal(result.modalities[name][keep], layer[keep])


kit = ROOM.kit  # the exporter tests' helpers (GLB reading) and the Khronos validator, as fixtures here
gltf_validator = ROOM.gltf_validator
