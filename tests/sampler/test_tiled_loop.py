"""The tiled denoising loop, driven by fake denoisers (no real model needed)."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from worldgen.backends.jointnet.schedulers import make_scheduler
from worldgen.sampler.tiled import Known, TiledSampler, TilingRecipe

SD_SCHEDULE = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000,
               "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "prediction_type": "epsilon"}


def _ddim():
    return make_scheduler("ddim", SD_SCHEDULE)


class Counting:
    """A denoiser that records the batch shape of every call, grouped by timestep."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, windows):
        self.calls.append((int(t), tuple(x.shape), tuple((w.x, w.y) for w in windows.layout.windows)))
        return 0.1 * x

    def per_step(self):
        return list(Counter(t for t, _, _ in self.calls).values())


def smoothing_denoiser(scheduler):
    """Predicts noise such that the clean image is a blur of the window (replicate padding at the
    window's borders): window content is smooth, and so is the panorama where windows overlap."""
    kernel = torch.ones(1, 1, 5, 5) / 25

    def denoise(x, t, windows):
        a = scheduler.alphas_cumprod[int(t)]
        c = x.shape[1]
        x0 = x / a.sqrt()
        for _ in range(3):
            x0 = F.conv2d(F.pad(x0, (2, 2, 2, 2), mode="replicate"), kernel.repeat(c, 1, 1, 1), groups=c)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return denoise


def _wrap_jump_ratio(latent):
    jump = (latent[..., 0] - latent[..., -1]).abs().mean()
    neighbours = (latent[..., 1:] - latent[..., :-1]).abs().mean(dim=(0, 1, 2))
    return float(jump / neighbours.median())


def test_circular_wrap_is_seamless_and_a_flat_span_is_not():
    sched = _ddim()
    circular = TiledSampler(TilingRecipe(window=(16, 16), circular=True)).sample(
        smoothing_denoiser(sched), sched, shape=(1, 4, 16, 96), steps=20, seed=0)
    flat = TiledSampler(TilingRecipe(window=(16, 16), circular=False)).sample(
        smoothing_denoiser(sched), sched, shape=(1, 4, 16, 96), steps=20, seed=0)
    assert torch.isfinite(circular).all()
    assert _wrap_jump_ratio(circular) < 2.0     # the wrap is just another pair of neighbouring columns
    assert _wrap_jump_ratio(flat) > 5.0         # without the wrap, the two ends are unrelated


def test_all_windows_of_a_step_go_in_one_call_plus_one_for_the_global_window():
    den = Counting()
    sampler = TiledSampler(TilingRecipe(window=(16, 16), circular=True))
    sampler.sample(den, _ddim(), shape=(1, 4, 16, 96), steps=10, seed=0)
    assert den.per_step() == [2] * 5 + [1] * 5          # steps i <= int(0.4 * 10) have the whole-panorama window
    tile_calls = [shape for _, shape, _ in den.calls if shape[-1] == 16]
    assert all(shape[0] == 12 for shape in tile_calls)  # 96 / stride 8 = 12 windows, in one batch
    global_calls = [shape for _, shape, _ in den.calls if shape[-1] == 96]
    assert global_calls == [(1, 4, 16, 96)] * 5
    assert sampler.stats.calls_per_step == den.per_step()


def test_window_batch_caps_windows_per_call():
    den = Counting()
    TiledSampler(TilingRecipe(window=(16, 16), global_fraction=0.0), window_batch=5).sample(
        den, _ddim(), shape=(2, 4, 16, 96), steps=3, seed=0)
    assert den.per_step() == [3, 3, 3]                     # 12 windows in batches of 5, 5, 2
    assert sorted(shape[0] for _, shape, _ in den.calls[:3]) == [4, 10, 10]  # batch of 2 panoramas: 5*2, 5*2, 2*2


def test_out_of_memory_halves_the_window_batch_and_finishes():
    seen = []

    def picky(x, t, windows):
        seen.append(x.shape[0])
        if x.shape[0] > 4:
            raise torch.OutOfMemoryError("fake: too many windows")
        return torch.zeros_like(x)

    sampler = TiledSampler(TilingRecipe(window=(16, 16), global_fraction=0.0))
    out = sampler.sample(picky, _ddim(), shape=(1, 4, 16, 96), steps=2, seed=0)
    assert torch.isfinite(out).all()
    assert sampler.window_batch == 3 and max(seen) == 12   # 12 -> 6 -> 3 windows per call
    assert sampler.stats.calls_per_step == [4, 4]


def test_offsets_change_every_step_and_are_seeded():
    den_a, den_b = Counting(), Counting()
    recipe = TilingRecipe(window=(16, 16), global_fraction=0.0)
    TiledSampler(recipe).sample(den_a, _ddim(), shape=(1, 4, 16, 96), steps=8, seed=3)
    TiledSampler(recipe).sample(den_b, _ddim(), shape=(1, 4, 16, 96), steps=8, seed=3)
    starts = [windows[0][0] for _, _, windows in den_a.calls]
    assert len(set(starts)) > 1 and all(0 <= s < 8 for s in starts)
    assert den_a.calls == den_b.calls


def test_same_seed_same_result_and_another_seed_differs():
    sched = _ddim()
    run = lambda seed: TiledSampler(TilingRecipe(window=(16, 16))).sample(  # noqa: E731
        smoothing_denoiser(sched), sched, shape=(1, 4, 16, 48), steps=4, seed=seed)
    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


@pytest.mark.parametrize("name", ["ddim", "dpm++", "unipc", "euler"])
def test_tiling_a_pointwise_model_equals_plain_sampling(name):
    """For a model whose prediction at a pixel depends only on that pixel, any windowing must give
    exactly what the scheduler gives on the full latent: blending happens before ONE step, so
    multistep solvers see one consistent history."""

    def pointwise(x, t, windows=None):
        return torch.tanh(x) * 0.9 + 0.001 * float(t)

    shape, steps, seed = (1, 4, 16, 72), 6, 5
    tiled_sched = make_scheduler(name, SD_SCHEDULE)
    tiled = TiledSampler(TilingRecipe(window=(16, 16))).sample(pointwise, tiled_sched, shape=shape, steps=steps, seed=seed)

    ref = make_scheduler(name, SD_SCHEDULE)
    ref.set_timesteps(steps)
    if hasattr(ref, "set_begin_index"):
        ref.set_begin_index(0)
    x = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)) * ref.init_noise_sigma
    for t in ref.timesteps:
        x = ref.step(pointwise(ref.scale_model_input(x, t), t), t, x).prev_sample
    assert torch.allclose(tiled, x, atol=1e-5, rtol=1e-5)


def test_known_content_is_kept_exactly_per_channel_and_per_pixel():
    known = torch.randn(1, 8, 16, 48)
    keep = torch.zeros(1, 8, 16, 48)
    keep[:, :4] = 1                  # a kept layer: the first four channels everywhere
    keep[:, 4:, :, :16] = 1          # and a known region of the other layer
    out = TiledSampler(TilingRecipe(window=(16, 16))).sample(
        Counting(), _ddim(), shape=(1, 8, 16, 48), steps=5, seed=0, known=Known(known, keep))
    assert torch.equal(out[:, :4], known[:, :4])
    assert torch.equal(out[:, 4:, :, :16], known[:, 4:, :, :16])
    assert not torch.allclose(out[:, 4:, :, 16:], known[:, 4:, :, 16:])


def test_sdedit_strength_runs_the_tail_of_the_schedule_and_stays_near_the_input():
    sched = _ddim()
    init = torch.randn(1, 4, 16, 48, generator=torch.Generator().manual_seed(9))
    den = Counting()
    sampler = TiledSampler(TilingRecipe(window=(16, 16), global_fraction=0.0))
    weak = sampler.sample(den, sched, shape=init.shape, steps=10, seed=0, init=init, strength=0.4)
    assert sampler.stats.steps == 4 and len(den.per_step()) == 4
    assert max(t for t, _, _ in den.calls) < 500
    strong = TiledSampler(TilingRecipe(window=(16, 16))).sample(Counting(), _ddim(), shape=init.shape, steps=10,
                                                                 seed=0, init=init, strength=1.0)
    assert (weak - init).abs().mean() < (strong - init).abs().mean()


def test_two_d_tiling_for_canvases_taller_than_a_window():
    den = Counting()
    out = TiledSampler(TilingRecipe(window=(16, 16), global_fraction=0.0)).sample(
        den, _ddim(), shape=(1, 4, 40, 48), steps=2, seed=0)
    assert out.shape == (1, 4, 40, 48) and torch.isfinite(out).all()
    ys = {y for _, _, windows in den.calls for _, y in windows}
    assert len(ys) >= 3 and max(ys) + 16 <= 40
    assert den.per_step() == [1, 1]


def test_given_noise_generator_and_step_hook():
    """What a diffusers pipeline hands the loop: its own starting noise and generator (the seed then
    only places the windows), and a hook after every step whose return value the loop goes on with."""
    recipe, shape = TilingRecipe(window=(8, 8)), (1, 4, 8, 32)
    by_seed = TiledSampler(recipe).sample(Counting(), _ddim(), shape=shape, steps=3, seed=5)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(shape, generator=generator)
    given = TiledSampler(recipe).sample(Counting(), _ddim(), shape=shape, steps=3, seed=5, noise=noise,
                                        generator=generator)
    assert torch.equal(given, by_seed)  # the same draws as the seed's own generator makes
    steps = []

    def hook(i, t, latents):
        steps.append(i)
        return torch.zeros_like(latents) if i == 2 else latents

    hooked = TiledSampler(recipe).sample(Counting(), _ddim(), shape=shape, steps=3, seed=5, on_step_end=hook)
    assert steps == [0, 1, 2] and not hooked.any()
