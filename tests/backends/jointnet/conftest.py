"""A tiny JointNet checkpoint and its diffusers panorama pipeline, built once per module.

The UNet advertises ``sample_size`` 8 latent cells (64 px), so a 256x64 panorama already spans
several windows and the wrap is exercised (the weights do not depend on that value).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WINDOW = 8
FIXTURE = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "official-tiny"


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


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURE / "model").is_dir():
        pytest.fail(f"the official-tiny fixture is missing at {FIXTURE}; clone shared/ beside the repo")
    return FIXTURE
