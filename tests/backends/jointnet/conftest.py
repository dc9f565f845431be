"""Fixtures for the JointNet tests: the official-tiny checkpoint written by the original code, and a
tiny JointNet checkpoint with its diffusers panorama pipeline, built once per module.

The tiny UNet advertises ``sample_size`` 8 latent cells (64 px), so a 256x64 panorama already spans
several windows and the wrap is exercised (the weights do not depend on that value).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The repo and shared/ sit side by side (/work/main and /work/shared; CI clones the same way).
FIXTURE = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "official-tiny"
WINDOW = 8


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not (FIXTURE / "reference.npz").is_file():
        pytest.fail(f"the official-tiny fixture is missing at {FIXTURE}; clone shared/ beside the repo")
    return FIXTURE


@pytest.fixture(scope="session")
def reference(fixture_dir):
    import torch

    with np.load(fixture_dir / "reference.npz") as data:
        return {k: torch.from_numpy(np.array(data[k])) for k in data.files}


@pytest.fixture
def store_home(tmp_path, monkeypatch) -> Path:
    """An empty model store for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("WORLDGEN_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", seed=0, sample_size=WINDOW)


@pytest.fixture(scope="module")
def pipe(checkpoint):
    from worldgen.backends.jointnet.panorama_pipeline import JointNetPanoramaPipeline

    pipeline = JointNetPanoramaPipeline.from_jointnet_checkpoint(checkpoint)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
