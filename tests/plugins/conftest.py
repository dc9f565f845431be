"""Fixtures for the modality plugin tests."""

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EDGES_SOURCE = REPO / "plugins" / "worldgen-edges"


@pytest.fixture(scope="session")
def edges_source():
    """The example package's source folder."""
    return EDGES_SOURCE


@pytest.fixture
def edges_spec(monkeypatch):
    """The example third-party plugin's SPEC, imported from its source folder (no install needed)."""
    monkeypatch.syspath_prepend(str(EDGES_SOURCE))
    import worldgen_edges

    return worldgen_edges.SPEC


@pytest.fixture
def unit_normals():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(8, 12, 3))
    v[..., 2] = np.abs(v[..., 2])  # visible surfaces face the viewer
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_dpt(tmp_path_factory):
    """A tiny random DPT depth model with its image processor, saved like a Hub checkpoint folder."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8, neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=8,
                       backbone_out_indices=[0, 1, 2, 3], reassemble_factors=[4, 2, 1, 0.5])
    torch.manual_seed(0)
    model = DPTForDepthEstimation(config).eval()
    folder = tmp_path_factory.mktemp("tiny-dpt")
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder
