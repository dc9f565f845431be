"""Fixtures for the reliability tests; the helpers live in ``reliability_support`` (importable)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_support import procedural_scene  # noqa: E402


@pytest.fixture(scope="session")
def _scene_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "scene"
    procedural_scene(path)
    return path


@pytest.fixture
def scene(_scene_template, tmp_path) -> Path:
    """A fresh writable copy of a 64x32 procedural scene (version 1) in this test's folder."""
    return Path(shutil.copytree(_scene_template, tmp_path / "scene"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine more threads only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
