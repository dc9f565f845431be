"""JointNetPipeline on the fixture's base/ + model/: shapes, finiteness, determinism, schedulers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldgen.backends.jointnet import JointNetPipeline, load_jointnet, make_scheduler
from worldgen.errors import ModelError, UserInputError

H, W = 32, 48  # pixels; the fixture VAE downsamples 2x -> 16x24 latents


@pytest.fixture(scope="module")
def pipe(fixture_dir):
    return JointNetPipeline.from_pretrained(fixture_dir / "model", base_model=fixture_dir / "base",
                                            torch_dtype=torch.float32)


def _run(pipe, seed=0, **kw):
    kw.setdefault("num_inference_steps", 2)
    return pipe("a red house", height=H, width=W, generator=torch.Generator().manual_seed(seed), **kw)


def test_components(pipe):
    from worldgen.backends.jointnet import JointNetPair

    assert isinstance(pipe.jointnet, JointNetPair)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # from base/scheduler
    assert pipe.vae_scale_factor == 2 and pipe.latent_channels == 4
    cond, uncond = pipe.encode_prompt(["a", "b"], None, True)
    assert cond.shape == uncond.shape == (2, 77, 32)
    assert pipe.encode_prompt("a", None, False)[1] is None


def test_generation_shapes_finite_deterministic(pipe):
    first, again, other = _run(pipe), _run(pipe), _run(pipe, seed=1)
    assert first.images.shape == (1, H, W, 3) and first.modality.shape == (1, H, W, 3)
    assert first.images.dtype == np.float32
    for arr in (first.images, first.modality):
        assert np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1
    assert np.array_equal(first.images, again.images) and np.array_equal(first.modality, again.modality)
    assert not np.array_equal(first.images, other.images)


def test_latents_are_the_rgb_and_modality_stack(pipe):
    latents = torch.randn(2, 8, H // 2, W // 2, generator=torch.Generator().manual_seed(3))
    a = pipe(["x", "y"], height=H, width=W, num_inference_steps=2, latents=latents, output_type="latent")
    b = pipe(["x", "y"], height=H, width=W, num_inference_steps=2, latents=latents.clone(), output_type="latent")
    assert a.images.shape == (2, 8, H // 2, W // 2) and torch.equal(a.images, b.images)
    # Changing only the modality noise changes the RGB result too: the branches are coupled.
    latents2 = latents.clone()
    latents2[:, 4:] += 1
    c = pipe(["x", "y"], height=H, width=W, num_inference_steps=2, latents=latents2, output_type="latent")
    assert not torch.allclose(c.images[:, :4], a.images[:, :4])
    with pytest.raises(UserInputError, match="stacked"):
        pipe("x", height=H, width=W, num_inference_steps=1, latents=torch.randn(1, 4, H // 2, W // 2))


def test_cfg_is_one_forward_per_step(pipe):
    calls = []
    hook = pipe.jointnet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        _run(pipe, num_inference_steps=3, guidance_scale=5.0, negative_prompt="blurry")
    finally:
        hook.remove()
    assert calls == [2, 2, 2]  # uncond + cond windows together, both branches inside one call


@pytest.mark.parametrize("name", ["dpm++", "unipc"])
def test_schedulers_swap_in(pipe, name):
    saved = pipe.scheduler
    try:
        pipe.scheduler = make_scheduler(name, saved.config)
        out = _run(pipe, num_inference_steps=3)
        assert np.isfinite(out.images).all() and np.isfinite(out.modality).all()
        assert np.array_equal(out.images, _run(pipe, num_inference_steps=3).images)
    finally:
        pipe.scheduler = saved


def test_unknown_scheduler_names_the_choices(pipe):
    with pytest.raises(UserInputError, match="ddim"):
        make_scheduler("nonsense", pipe.scheduler.config)


def test_inpaint_checkpoint_generates_from_text(fixture_dir):
    pipe = load_jointnet(fixture_dir / "model_inpaint", fixture_dir / "base")
    assert pipe.jointnet.has_masked_latent_input
    out = _run(pipe)
    assert out.images.shape == (1, H, W, 3) and np.isfinite(out.modality).all()


def test_missing_base_names_the_fix(fixture_dir):
    with pytest.raises(ModelError, match="--base"):
        load_jointnet(fixture_dir / "model")


def test_pipeline_save_round_trip(pipe, tmp_path, fixture_dir):
    pipe.save_pretrained(tmp_path / "ck")
    again = JointNetPipeline.from_pretrained(tmp_path / "ck", base_model=fixture_dir / "base")
    a, b = _run(pipe), _run(again)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.modality, b.modality)
