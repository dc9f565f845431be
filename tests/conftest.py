"""Test-wide settings: never touch a hub, never touch the user's model store; shared fixtures."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Helper modules shared by several test folders (reliability_support: CLI runs, scene trees, fixtures).
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("WORLDGEN_HOME", tempfile.mkdtemp(prefix="worldgen-test-home-"))
os.environ.pop("WORLDGEN_PLUGINS", None)
os.environ.pop("WORLDGEN_DEV_PLUGINS", None)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine more threads only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A `worldgen models tiny` folder (official-layout checkpoint with its own base/), once per session."""
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint", seed=0)
