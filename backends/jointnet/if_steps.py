"""IF's scheduler stepped on a tiled canvas of several 3-channel images (``LearnedVarianceSteps``).

Its own module because both IF stages use it: stage I (``if_backend``) on the RGB and modality
canvas, stage II (``if_upscale``) on the RGB alone; neither stage imports the other for it.
"""

from __future__ import annotations

from types import SimpleNamespace

PIXEL_CHANNELS = 3


class LearnedVarianceSteps:
    """A scheduler whose canvas is [images... | unused], stepped with [noise... | variance...].

    Everything but ``step`` is the wrapped scheduler's. ``images``: how many 3-channel images the
    canvas holds (RGB and each modality)."""

    def __init__(self, scheduler, images: int):
        self.scheduler = scheduler
        self.images = images
        self.learned = getattr(scheduler.config, "variance_type", None) in ("learned", "learned_range")

    def __getattr__(self, name):
        return getattr(self.scheduler, name)

    def step(self, model_output, timestep, sample, generator=None):
        import torch

        half = self.images * PIXEL_CHANNELS
        _, _, h, w = sample.shape
        per_image = (self.images, PIXEL_CHANNELS, h, w)
        eps = model_output[:, :half].reshape(per_image)
        out = torch.cat([eps, model_output[:, half:].reshape(per_image)], dim=1) if self.learned else eps
        kwargs = {"generator": generator} if "generator" in _parameters(self.scheduler.step) else {}
        prev = self.scheduler.step(out, timestep, sample[:, :half].reshape(per_image), **kwargs).prev_sample
        prev = prev.reshape(1, half, h, w)
        return SimpleNamespace(prev_sample=torch.cat([prev, torch.zeros_like(prev)], dim=1))


def _parameters(function) -> set:
    import inspect

    return set(inspect.signature(function).parameters)
