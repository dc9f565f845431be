"""The pixel-space IF variant, end to end on a tiny IF-shaped UNet and a tiny T5 built in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldgen.backends.jointnet.deepfloyd import DeepFloydJointNetPipeline, build_tiny_if_components
from worldgen.errors import ModelError


@pytest.fixture(scope="module")
def parts():
    return build_tiny_if_components(seed=0)


@pytest.fixture(scope="module")
def pipe(parts):
    pipe = DeepFloydJointNetPipeline.from_if_unet(**parts)
    # Give the exchange non-zero values, as training would, so the coupling is exercised.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for branch in (pipe.jointnet.unet, pipe.jointnet.jointnet):
            for m in branch.exchange_modules():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
    return pipe


def test_if_branches_have_the_if_shape(parts):
    pair = DeepFloydJointNetPipeline.from_if_unet(**parts).jointnet
    assert pair.in_channels == 3 and pair.learned_variance
    assert pair.unet.config.out_channels == 6 and pair.jointnet.config.encoder_hid_dim_type == "text_proj"
    x = torch.randn(2, 3, 16, 16)
    ctx = torch.randn(2, 77, 32)
    with torch.no_grad():
        eps_rgb, eps_mod = pair(x, torch.randn(2, 3, 16, 16), 500, ctx)
        assert torch.equal(eps_rgb, parts["unet"](x, 500, ctx).sample)  # zero exchange: exactly IF
    assert eps_mod.shape == (2, 6, 16, 16)


def test_if_generation_end_to_end(pipe):
    run = lambda seed: pipe(["a hill", "a lake"], num_inference_steps=3, guidance_scale=4.0,
                            generator=torch.Generator().manual_seed(seed))
    a, b, c = run(0), run(0), run(1)
    assert a.images.shape == (2, 16, 16, 3) and a.modality.shape == (2, 16, 16, 3)
    assert np.isfinite(a.images).all() and np.isfinite(a.modality).all()
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert np.array_equal(a.images, b.images) and np.array_equal(a.modality, b.modality)
    assert not np.array_equal(a.images, c.images)


def test_if_guidance_is_one_forward_per_step(pipe):
    calls = []
    hook = pipe.jointnet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        pipe("a", num_inference_steps=2, guidance_scale=4.0, generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert calls == [2, 2]


def test_if_save_and_load_from_base_folder(pipe, parts, tmp_path):
    base = tmp_path / "if-base"
    parts["text_encoder"].save_pretrained(base / "text_encoder")
    parts["tokenizer"].save_pretrained(base / "tokenizer")
    parts["scheduler"].save_config(base / "scheduler")
    pipe.save_pretrained(tmp_path / "ck", modality="depth")
    again = DeepFloydJointNetPipeline.from_pretrained(tmp_path / "ck", base_model=base)
    run = lambda p: p("a hill", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    a, b = run(pipe), run(again)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.modality, b.modality)


def test_latent_pair_is_refused_by_if_pipeline(fixture_dir, parts):
    from worldgen.backends.jointnet import load_pair

    with pytest.raises(ModelError, match="JointNetPipeline"):
        DeepFloydJointNetPipeline(parts["tokenizer"], parts["text_encoder"], parts["scheduler"],
                                  load_pair(fixture_dir / "model"))
