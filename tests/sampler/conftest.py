"""Tiny JointNet checkpoints for the task and CLI tests, written once per session.

They come from the JointNet helper's tiny writer; only the UNet's advertised ``sample_size`` is set
to 8 latent cells (64 px) so that small panoramas already need several windows (the backend sizes
its windows from that config value; the weights do not depend on it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

WINDOW = 8


def _write(directory: Path, inpaint: bool) -> Path:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(directory, seed=0, inpaint=inpaint, sample_size=WINDOW)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny-jointnet")
    return {"generate": _write(root / "generate", inpaint=False), "inpaint": _write(root / "inpaint", inpaint=True)}


@pytest.fixture(scope="session")
def backend(tiny_models):
    from worldgen.backends.jointnet.spec import load

    return load({"model": str(tiny_models["generate"])})


@pytest.fixture(scope="session")
def inpaint_backend(tiny_models):
    from worldgen.backends.jointnet.spec import load

    return load({"model": str(tiny_models["inpaint"])})



@pytest.fixture(autouse=True, scope="module")
def _plain_cpu_kernels():
    """oneDNN's per-shape kernel set-up costs far more than the convolutions of these tiny models
    (the windows come in several batch shapes); plain kernels give the same results, faster."""
    import torch

    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous
