"""The published preset is the original's recipe (issue 14): the whole-panorama window for steps
i <= int(0.4 * steps) (21 of 50), and DDIM even where the base folder names PNDM."""

import torch

from worldgen.sampler.presets import FAST, PUBLISHED, global_window_steps
from worldgen.sampler.tiled import TiledSampler, TilingRecipe


class WholeWindowSpy:
    """A denoiser that counts the calls covering the whole panorama width."""

    def __init__(self, width):
        self.width, self.whole = width, []

    def __call__(self, x, t, windows):
        if x.shape[-1] == self.width:
            self.whole.append(windows.step)
        return torch.zeros_like(x)


def test_the_whole_panorama_window_runs_21_of_50_steps():
    from diffusers import DDIMScheduler

    spy = WholeWindowSpy(width=96)
    recipe = TilingRecipe(window=(16, 16), stride=(8, 8), global_fraction=PUBLISHED.global_fraction)
    TiledSampler(recipe).sample(spy, DDIMScheduler(), shape=(1, 4, 16, 96), steps=50, seed=0)
    assert spy.whole == list(range(21))  # i = 0 .. int(0.4 * 50) = 20, inclusive
    assert global_window_steps(0.4, 50) == 21 and global_window_steps(0.0, 50) == 0
    assert FAST.global_steps(FAST.steps) == 2  # the fast preset's count is what it was measured with


def test_the_baseline_loop_follows_the_original_counts_too():
    import inspect
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import original_loop
        import sd21_models
    finally:
        sys.path.pop(0)
    from worldgen.backends.jointnet.pipeline import JointNetPipeline

    pipe = JointNetPipeline(**sd21_models.build("cpu", torch.float32, tiny=True))
    whole = []
    original_loop.generate(pipe, "a lake", width=24 * 8, height=8 * 8, steps=10, window=8, stride=4,
                           on_call=lambda x: whole.append(x.shape[-1] == 24))
    assert sum(whole) == 5  # steps 0..4: i <= int(0.4 * 10)
    assert "i <= " in inspect.getsource(original_loop.generate)
