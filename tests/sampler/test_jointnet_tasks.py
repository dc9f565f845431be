"""Every panorama task of the JointNet backend on a tiny random checkpoint (see conftest.py)."""

from collections import Counter

import numpy as np
import pytest

from worldgen.backend import GenerateRequest
from worldgen.errors import ModelError, UserInputError
from worldgen.scene.snapshot import Snapshot
from worldgen.geometry.projection import CylindricalProjection
from worldgen.sampler.canvas import resize_nearest
from worldgen.sampler.requests import EditRequest, EstimateRequest, OutpaintRequest, PaintRequest, RefineRequest

STEPS = 1


def _neighbour_stats(layer):
    jump = float(np.abs(layer[:, 0] - layer[:, -1]).mean())
    neighbours = np.abs(np.diff(layer, axis=1)).mean(axis=(0, 2))
    far = float(np.abs(layer - np.roll(layer, layer.shape[1] // 2, axis=1)).mean())  # unrelated columns
    return jump, neighbours, far


def _generate(backend, width=256, height=64, seed=0, steps=STEPS, **kw):
    return backend.generate(GenerateRequest(prompt="a misty fjord", width=width, height=height, seed=seed,
                                            steps=steps, **kw))


class CallCounter:
    """Wraps ``pair.guided`` to count model calls per timestep and keep their inputs."""

    def __init__(self, pair, monkeypatch):
        self.calls = []
        original = pair.guided

        def counting(x_rgb, x_joint, t, *args, **kwargs):
            self.calls.append((int(t), x_rgb.shape, args[3:]))
            return original(x_rgb, x_joint, t, *args, **kwargs)

        monkeypatch.setattr(pair, "guided", counting)

    def per_step(self):
        return list(Counter(t for t, _, _ in self.calls).values())


@pytest.fixture(scope="module")
def pano(backend):
    return _generate(backend, steps=3)


@pytest.fixture(scope="module")
def small(backend):
    return _generate(backend, width=128, height=64, steps=1)


def test_generate_gives_both_layers_at_the_requested_size(backend, pano):
    assert pano.image.shape == (64, 256, 3) and pano.modalities["depth"].shape == (64, 256, 1)
    for layer in (pano.image, pano.modalities["depth"]):
        assert np.isfinite(layer).all() and layer.min() >= 0 and layer.max() <= 1 and layer.std() > 0
    assert pano.projection == CylindricalProjection(256, 64, 360.0)
    assert {"disparity_scale", "disparity_shift", "near", "far"} <= set(pano.geometry)


@pytest.mark.parametrize("layer", ["image", "depth"])
def test_the_360_wrap_is_seamless(pano, layer):
    values = pano.image if layer == "image" else pano.modalities["depth"]
    jump, neighbours, far = _neighbour_stats(values)
    typical = float(np.percentile(neighbours, 90))
    assert jump <= typical                 # the wrap is an ordinary pair of neighbouring columns
    assert far > typical                   # while unrelated columns differ more: the check can fail


def test_all_windows_of_a_step_share_one_model_call(backend, monkeypatch):
    counter = CallCounter(backend.pipe.jointnet, monkeypatch)
    _generate(backend, steps=3)
    # ceil(40% of 3) steps also denoise the whole panorama (a second call, since its shape differs)
    assert counter.per_step() == [2, 2, 1]
    tile_batches = {shape[0] for _, shape, _ in counter.calls if shape[-1] == backend.window}
    assert tile_batches == {256 // 8 // (backend.window // 2)}    # latent width / stride = 8 windows at once
    assert [shape[-1] for _, shape, _ in counter.calls[:2]] == [backend.window, 256 // 8]


def test_window_batch_limits_windows_per_call(tiny_models, monkeypatch):
    from worldgen.backends.jointnet.spec import load

    limited = load({"model": str(tiny_models["generate"]), "window_batch": 3})
    counter = CallCounter(limited.pipe.jointnet, monkeypatch)
    _generate(limited, width=128, steps=1)
    assert counter.per_step() == [3]                  # 4 windows in 3 + 1, plus the whole panorama
    assert [shape[0] for _, shape, _ in counter.calls] == [3, 1, 1]


def test_same_seed_same_world_other_seed_other_world(backend, small):
    again = _generate(backend, width=128, height=64, steps=1)
    assert np.array_equal(again.image, small.image)
    assert np.array_equal(again.modalities["depth"], small.modalities["depth"])
    assert not np.allclose(_generate(backend, width=128, height=64, steps=1, seed=1).image, small.image)


def test_partial_span_and_named_schedulers(backend):
    half = _generate(backend, width=128, height=32, scheduler="dpm++", span_deg=180.0)
    assert half.projection.span_deg == 180.0 and np.isfinite(half.image).all()
    assert np.isfinite(_generate(backend, width=128, height=32, scheduler="unipc").image).all()
    with pytest.raises(UserInputError, match="unknown scheduler"):
        _generate(backend, width=128, height=32, scheduler="fastest")


def test_two_d_tiled_refine_keeps_shapes_and_finiteness(backend, monkeypatch):
    source = _generate(backend, width=64, height=64, steps=1)
    counter = CallCounter(backend.pipe.jointnet, monkeypatch)
    refined = backend.refine(RefineRequest(scale=2, steps=5, prompt="a misty fjord"), source)
    assert refined.image.shape == (128, 128, 3) and refined.modalities["depth"].shape == (128, 128, 1)
    assert refined.projection == CylindricalProjection(128, 128, 360.0)
    assert np.isfinite(refined.image).all() and np.isfinite(refined.modalities["depth"]).all()
    assert not np.allclose(refined.image[::2, ::2], source.image, atol=1e-3)
    # strength 0.4 of 5 steps = 2 steps, each ONE call over windows in several rows (16 latent rows)
    assert counter.per_step() == [1, 1]
    assert counter.calls[0][1][0] >= 4 * 3           # 4 columns x at least 3 rows of windows


def test_refine_copies_the_kept_layer_bit_for_bit(backend, small):
    keep_image = backend.refine(RefineRequest(scale=1, steps=5, keep="image"), small)
    assert np.array_equal(keep_image.image, small.image)
    assert not np.array_equal(keep_image.modalities["depth"], small.modalities["depth"])
    quarter = Snapshot(image=small.image[:32], modalities={"depth": small.modalities["depth"][:32]},
                       projection=CylindricalProjection(128, 32, 360.0))
    keep_depth = backend.refine(RefineRequest(scale=2, steps=5, keep="modality"), quarter)
    assert np.array_equal(keep_depth.modalities["depth"], resize_nearest(quarter.modalities["depth"], 256, 64))
    assert keep_depth.image.shape == (64, 256, 3)


@pytest.mark.parametrize("which", ["backend", "inpaint_backend"])
def test_outpainting_a_photo_leaves_the_photo_untouched(which, request, monkeypatch):
    model = request.getfixturevalue(which)
    rng = np.random.default_rng(0)
    photo = np.clip(rng.random((60, 64, 3)).cumsum(axis=1) / 40, 0, 1).astype(np.float32)  # odd height on purpose
    snapshot = Snapshot(image=photo, modalities={}, projection=CylindricalProjection(64, 60, 90.0))
    counter = CallCounter(model.pipe.jointnet, monkeypatch)
    result = model.outpaint(OutpaintRequest(prompt="a beach", steps=STEPS, span_deg=360.0), snapshot)
    assert result.size == (256, 64) and result.projection.span_deg == 360.0
    x, y = 96, 2
    assert np.array_equal(result.image[y:y + 60, x:x + 64], photo)
    outside = np.ones((64, 256), bool)
    outside[y:y + 60, x:x + 64] = False
    assert result.image[outside].std() > 0 and np.isfinite(result.modalities["depth"]).all()
    if model.has_masked_input:  # the model was told where the photo is: mask 0 (known) there
        mask_rgb = counter.calls[0][2][0]
        assert 0.0 < float(mask_rgb.float().mean()) < 1.0


def test_the_known_region_survives_sampling_within_the_vae_round_trip(backend):
    """Before pasting back, the decoded known region is what the VAE makes of the photo."""
    import torch

    rng = np.random.default_rng(1)
    photo = np.clip(rng.random((64, 64, 3)).cumsum(axis=1) / 40, 0, 1).astype(np.float32)
    snapshot = Snapshot(image=photo, modalities={}, projection=CylindricalProjection(64, 64, 90.0))
    captured = {}
    original = backend._decode

    def keep_decoded(latents, circular, progress):
        captured["image"], captured["modality"] = original(latents, circular, progress)
        return captured["image"], captured["modality"]

    backend._decode = keep_decoded
    try:
        backend.outpaint(OutpaintRequest(prompt="a beach", steps=STEPS, span_deg=360.0), snapshot)
    finally:
        del backend._decode
    with torch.no_grad():
        x = torch.from_numpy(photo).permute(2, 0, 1)[None] * 2 - 1
        round_trip = backend.vae.decode(backend.vae.encode(x, circular=False), circular=False)
    round_trip = ((round_trip[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
    region = captured["image"][:, 96:160]
    vae_error = np.abs(round_trip - photo).mean()
    assert np.abs(region - photo).mean() <= 1.5 * vae_error + 1e-3


def test_extending_a_scene_keeps_its_columns(backend):
    half = _generate(backend, width=128, height=32, span_deg=180.0, steps=1)
    wide = backend.outpaint(OutpaintRequest(steps=STEPS, span_deg=360.0, x=0), half)
    assert wide.size == (256, 32) and wide.projection.full_circle
    assert np.array_equal(wide.image[:, :128], half.image)
    assert np.array_equal(wide.modalities["depth"][:, :128], half.modalities["depth"])
    taller = backend.outpaint(OutpaintRequest(steps=STEPS, height=48), half)
    assert taller.size == (128, 48) and np.array_equal(taller.image[8:40], half.image)
    assert taller.projection.span_deg == 180.0


@pytest.mark.parametrize("which", ["backend", "inpaint_backend"])
def test_masked_edit_changes_only_the_masked_region(which, request, small):
    pano = small
    model = request.getfixturevalue(which)
    mask = np.zeros((64, 128), bool)
    mask[16:48, 40:100] = True
    both = model.edit(EditRequest(prompt="a red boat", steps=STEPS, mask=mask), pano)
    for before, after in ((pano.image, both.image), (pano.modalities["depth"], both.modalities["depth"])):
        assert np.array_equal(after[~mask], before[~mask])
        assert not np.array_equal(after[mask], before[mask])
    image_only = model.edit(EditRequest(prompt="a red boat", steps=STEPS, mask=mask, layers="image"), pano)
    assert np.array_equal(image_only.modalities["depth"], pano.modalities["depth"])
    assert np.array_equal(image_only.image[~mask], pano.image[~mask])


def test_edit_mask_must_match_the_scene(backend, small):
    with pytest.raises(UserInputError, match="resize the mask to 128x64"):
        backend.edit(EditRequest(steps=STEPS, mask=np.ones((32, 128), bool)), small)


def test_conversions_keep_the_given_layer(backend, small):
    pano = small
    depth = backend.estimate(EstimateRequest(steps=STEPS, image=pano.image, span_deg=360.0))
    assert np.array_equal(depth.image, pano.image)
    assert depth.modalities["depth"].shape == (64, 128, 1) and np.isfinite(depth.modalities["depth"]).all()
    painted = backend.paint(PaintRequest(prompt="the fjord in winter", steps=STEPS), pano)
    assert np.array_equal(painted.modalities["depth"], pano.modalities["depth"])
    assert not np.array_equal(painted.image, pano.image)
    single = backend.estimate(EstimateRequest(steps=STEPS, image=pano.image[:, :64], span_deg=60.0))
    assert single.size == (64, 64) and not single.projection.full_circle


def test_masked_input_is_refused_for_a_model_without_it(backend, small):
    pano = small
    with pytest.raises(ModelError, match="no masked-latent input") as info:
        backend.paint(PaintRequest(steps=STEPS, method="masked"), pano)
    assert "\n" not in str(info.value)


def test_tasks_on_a_scene_without_the_modality_say_what_to_do(backend, small):
    pano = small
    bare = Snapshot(image=pano.image, modalities={}, projection=pano.projection)
    with pytest.raises(UserInputError, match="worldgen depth"):
        backend.refine(RefineRequest(scale=1, steps=STEPS), bare)


def test_the_official_layout_fixture_runs_through_the_backend():
    """The checkpoint written by the original implementation (pickled weights, 0.19 configs, its
    own tiny VAE with a 2x latent factor) works unchanged: windows and latent scale come from it."""
    from pathlib import Path

    from worldgen.backends.jointnet.spec import load

    fixture = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "official-tiny"
    inpaint = load({"model": str(fixture / "model_inpaint"), "base": str(fixture / "base")})
    assert (inpaint.window, inpaint.factor, inpaint.has_masked_input) == (16, 2, True)
    image = np.linspace(0, 1, 32 * 32 * 3, dtype=np.float32).reshape(32, 32, 3)
    result = inpaint.estimate(EstimateRequest(steps=1, image=image, span_deg=60.0, method="masked"))
    assert np.array_equal(result.image, image)
    assert result.modalities["depth"].shape == (32, 32, 1) and np.isfinite(result.modalities["depth"]).all()


def test_a_half_precision_overflow_is_redone_in_float32_with_the_same_weights(tiny_models, monkeypatch):
    import torch

    from worldgen.backends.jointnet.spec import load

    half = load({"model": str(tiny_models["generate"]), "dtype": "bfloat16"})
    pair = half.pipe.jointnet
    weights = {k: v.clone() for k, v in pair.state_dict().items()}
    original, seen = pair.guided, []

    def overflow_in_half(x_rgb, *args, **kwargs):
        seen.append(x_rgb.dtype)
        eps_rgb, eps_mod = original(x_rgb, *args, **kwargs)
        if x_rgb.dtype == torch.bfloat16:
            return eps_rgb * float("inf"), eps_mod
        return eps_rgb, eps_mod

    monkeypatch.setattr(pair, "guided", overflow_in_half)
    result = _generate(half, width=128, height=32, steps=1)
    assert np.isfinite(result.image).all() and np.isfinite(result.modalities["depth"]).all()
    assert seen == [torch.bfloat16] * 2 + [torch.float32] * 2  # windows + whole panorama, then the redo
    assert all(torch.equal(v, weights[k]) and v.dtype == torch.bfloat16 for k, v in pair.state_dict().items())
