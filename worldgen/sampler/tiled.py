"""The tiled denoising loop: any canvas size from a model trained on fixed-size squares.

Each step cuts the panorama latent into overlapping windows (``windows.py``), sends all of them
through the model in as few batched calls as memory allows, blends the predicted noise per pixel
with the windows' edge-ramped weights, and takes ONE scheduler step on the whole panorama latent.

Why blend noise and step once, instead of stepping every window with its own scheduler copy: the
scheduler's update is the same per-pixel formula for every window, so blending the windows' noise
and stepping once equals blending the windows' stepped latents, for a single-step scheduler such as
DDIM. Multistep solvers (DPM-Solver++, UniPC) keep a history of past model outputs; with one
scheduler on the full latent that history is the blended panorama-wide output, which is exactly
what the solver's derivation assumes. Per-view copies would each hold a history of outputs for a
window at a position that moved (random offsets), which is wrong, and copying state costs time.

The loop knows nothing about a particular model: ``denoise(latents, t, windows)`` takes a batch
of window latents (N, C, h, w) and returns the predicted noise of the same shape; classifier-free
guidance and any conditioning crops (``windows.crop``) happen inside it, as one batched call.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..numerics import SAMPLING_ADVICE, NumericalError, PrecisionGuard, check_finite, is_reduced_precision
from ..progress import ProgressCallback, report
from .presets import global_window_steps
from .windows import Layout, Window, gather, scatter_add, tile_layout


@dataclass(frozen=True)
class TilingRecipe:
    """How windows cover the latent. Defaults are the published panorama recipe (JointNet sec. 4.2):
    windows as tall as the latent, stride half a window, a fresh random offset each step, circular
    wrap for full 360-degree spans, the whole panorama as one more window of weight 5 for steps
    i <= int(0.4 * steps) (21 of 50, as the original code), and edge ramps of an eighth of the window."""

    window: tuple[int, int]
    stride: Optional[tuple[int, int]] = None
    circular: bool = True
    random_offset: bool = True
    global_fraction: float = 0.4
    global_weight: float = 5.0
    ramp: Optional[int] = None
    guidance_fraction: float = 1.0

    def guided_steps(self, steps: int) -> int:
        """Steps (from the first) whose windows are marked ``guided``: the denoiser computes
        classifier-free guidance there and the conditional half alone afterwards."""
        return steps if self.guidance_fraction >= 1.0 else math.ceil(self.guidance_fraction * steps)

    @property
    def strides(self) -> tuple[int, int]:
        if self.stride is not None:
            return self.stride
        return max(1, self.window[0] // 2), max(1, self.window[1] // 2)

    def layout(self, width: int, height: int, offset: tuple[int, int]) -> Layout:
        return tile_layout(width, height, self.window, self.strides, circular=self.circular, offset=offset,
                           ramp=self.ramp)


@dataclass(frozen=True)
class WindowBatch:
    """What one model call covers: the windows' flat indices into the canvas. ``crop`` cuts the same
    windows out of any canvas-sized tensor (masks, masked latents, a kept layer's latent). ``step``
    is the step's index in this run; ``guided`` False asks for the conditional prediction alone
    (the recipe's ``guidance_fraction`` has passed)."""

    index: torch.Tensor
    layout: Layout
    step: int = 0
    guided: bool = True

    def crop(self, canvas: torch.Tensor) -> torch.Tensor:
        return gather(canvas, self.index.to(canvas.device))


@dataclass
class Known:
    """Content that is known and must be kept: clean latents and a keep mask broadcastable to the
    latent (1 = keep). The mask can be per channel (keep the RGB half of a joint latent, generate the
    modality) and per pixel (outpainting, masked edits)."""

    latents: torch.Tensor
    keep: torch.Tensor


# Layouts whose device tensors one run keeps (a 1-D panorama has at most stride x 2 distinct ones).
LAYOUT_CACHE_SIZE = 128

Denoiser = Callable[[torch.Tensor, torch.Tensor, WindowBatch], torch.Tensor]
# (step index, timestep, latents after the step) -> the latents the loop goes on with
StepHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SampleStats:
    """What the last ``sample`` call did (for progress text and tests)."""

    steps: int = 0
    calls_per_step: list[int] = field(default_factory=list)
    windows_per_step: list[int] = field(default_factory=list)


class TiledSampler:
    """Runs the tiled loop. ``window_batch`` caps windows per model call (None: all windows of a
    layout in one call); on an out-of-memory error the cap halves and the call is retried."""

    def __init__(self, recipe: TilingRecipe, window_batch: Optional[int] = None) -> None:
        if window_batch is not None and window_batch < 1:
            raise ValueError("window_batch must be at least 1")
        self.recipe = recipe
        self.window_batch = window_batch
        self.stats = SampleStats()
        self._device_layouts: dict = {}

    def sample(self, denoise: Denoiser, scheduler, *, shape: tuple[int, ...], steps: int, seed: int,
               init: Optional[torch.Tensor] = None, strength: float = 1.0, known: Optional[Known] = None,
               device=None, dtype=torch.float32, progress: Optional[ProgressCallback] = None,
               noise: Optional[torch.Tensor] = None, generator=None,
               on_step_end: Optional[StepHook] = None) -> torch.Tensor:
        """Denoise a latent of ``shape`` (B, C, H, W) and return it.

        ``init`` with ``strength`` < 1 is SDEdit: start from ``init`` noised to the strength's
        timestep and run only the remaining steps. ``known`` content is re-noised to the current
        noise level after every step and blended in (the "replacement" method), so the model always
        sees the known part as it would look at that noise level.

        ``noise`` is the starting noise (None: drawn from ``seed``); ``generator`` feeds the scheduler's
        own noise (None: a CPU generator seeded with ``seed``, which also drew the starting noise);
        ``seed`` always picks the windows' random offsets. ``on_step_end(i, t, latents)`` runs after
        every step and returns the latents to go on with (diffusers' ``callback_on_step_end``).
        """
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength {strength} must be in (0, 1]")
        run = dict(denoise=denoise, scheduler=scheduler, shape=shape, steps=steps, seed=seed, init=init,
                   strength=strength, known=known, device=torch.device(device or "cpu"), dtype=dtype,
                   progress=progress, noise=noise, generator=generator, on_step_end=on_step_end)
        if dtype == torch.float16:
            # float16 overflows where float32 does not: every step's prediction is checked, and a
            # faulty step is redone in float32 (each check waits for the GPU to finish the step).
            return self._attempt(**run, guard=PrecisionGuard("the denoising step", dtype, SAMPLING_ADVICE))
        # bfloat16 has float32's range and float32 is float32: the loop only accumulates a finite
        # flag on the device and never waits for the GPU. A fault found at the end reruns the
        # whole sample with the model in float32 (same seed, same windows) when the run was in
        # reduced precision, and stops with advice when float32 itself fails.
        latents, finite = self._attempt(**run, model_dtype=dtype)
        if not bool(finite) and is_reduced_precision(dtype):
            latents, finite = self._attempt(**run, model_dtype=torch.float32)
        if not bool(finite):
            raise NumericalError(f"the denoising loop produced NaN or infinite values in "
                                 f"{str(dtype).replace('torch.', '')}; {SAMPLING_ADVICE}")
        return latents

    def _attempt(self, *, denoise, scheduler, shape, steps, seed, init, strength, known, device, dtype, progress,
                 noise=None, generator=None, on_step_end=None,
                 guard: Optional[PrecisionGuard] = None, model_dtype=None):
        """One run of the loop. With ``guard``: per-step checks, returns the latents. Without: the model
        runs in ``model_dtype``; returns (latents, device bool "everything stayed finite")."""
        if generator is None:
            generator = torch.Generator("cpu").manual_seed(int(seed))
        offsets = np.random.default_rng([int(seed), 0x0FF5E7])  # separate stream: offsets never shift the noise

        timesteps = _timesteps(scheduler, steps, strength)
        model_timesteps = timesteps.to(device)

        if noise is None:
            noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        noise = noise.to(device=device, dtype=dtype)
        if init is not None and strength < 1.0:
            latents = scheduler.add_noise(init.to(device, dtype), noise, model_timesteps[:1])
        else:
            latents = noise * scheduler.init_noise_sigma
        if known is not None:
            known = Known(known.latents.to(device, dtype), known.keep.to(device, dtype))
            latents = self._blend_known(scheduler, latents, known, noise, model_timesteps[0])

        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        width, height = shape[-1], shape[-2]
        global_steps = global_window_steps(self.recipe.global_fraction, len(timesteps))
        guided_steps = self.recipe.guided_steps(len(timesteps))
        self.stats = SampleStats(steps=len(timesteps))
        self._device_layouts = {}
        finite = torch.ones((), dtype=torch.bool, device=device)
        for i, t in enumerate(timesteps):
            offset = self._offset(offsets)
            layouts = [(self.recipe.layout(width, height, offset), 1.0)]
            if i < global_steps and self.recipe.global_weight > 0:
                layouts.append((self._global_layout(width, height, offset), self.recipe.global_weight))
            model_in = scheduler.scale_model_input(latents, t)

            def predict(run_dtype, model_in=model_in, t_model=model_timesteps[i], layouts=layouts, i=i):
                return self._predict(denoise, model_in.to(run_dtype), t_model, layouts, i, i < guided_steps)

            eps, calls, windows = guard.run(predict) if guard is not None else predict(model_dtype)
            latents = scheduler.step(eps.to(dtype), t, latents, **step_kwargs).prev_sample
            if guard is not None:
                check_finite(latents, f"the scheduler step at t={int(t)}", SAMPLING_ADVICE)
            else:
                finite = finite & torch.isfinite(latents).all()
            if known is not None:
                t_next = model_timesteps[i + 1] if i + 1 < len(timesteps) else None
                latents = self._blend_known(scheduler, latents, known, noise, t_next)
            if on_step_end is not None:
                latents = on_step_end(i, t, latents)
            self.stats.calls_per_step.append(calls)
            self.stats.windows_per_step.append(windows)
            report(progress, "denoise", i + 1, len(timesteps), f"{windows} windows in {calls} calls")
        self._device_layouts = {}
        return latents if guard is not None else (latents, finite)

    # Internals ----------------------------------------------------------------------------
    def _offset(self, rng: np.random.Generator) -> tuple[int, int]:
        if not self.recipe.random_offset:
            return 0, 0
        sx, sy = self.recipe.strides
        return int(rng.integers(sx)), int(rng.integers(sy))

    def _global_layout(self, width: int, height: int, offset: tuple[int, int]) -> Layout:
        """The whole canvas as one window without edge ramps. On a circular canvas it is rolled by
        the step's offset, so the model's image border (where it sees zero padding) moves each step
        instead of staying at the wrap."""
        x = offset[0] if self.recipe.circular else 0
        return Layout(width=width, height=height, windows=(Window(x, 0, width, height),),
                      circular=self.recipe.circular, ramp=0)

    def _predict(self, denoise: Denoiser, latents: torch.Tensor, t, layouts, step: int = 0,
                 guided: bool = True) -> tuple[torch.Tensor, int, int]:
        """Blended noise prediction over all layouts, plus the number of model calls and windows."""
        b, c, h, w = latents.shape
        eps_sum = torch.zeros((b, c, h, w), dtype=torch.float32, device=latents.device)
        weight_sum = torch.zeros((1, 1, h, w), dtype=torch.float32, device=latents.device)
        calls = windows = 0
        for layout, scale in layouts:
            index, weights = self._layout_tensors(layout, latents.device)
            weights = weights * scale
            scatter_add(weight_sum, index, weights)
            calls += self._run_windows(denoise, latents, t, layout, index, weights, eps_sum, step, guided)
            windows += len(layout)
        return eps_sum / weight_sum, calls, windows

    def _layout_tensors(self, layout: Layout, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A layout's window indices and weights on ``device``. Built on the CPU, they travel through
        pinned memory without blocking (a plain host-to-GPU copy waits for the GPU to finish its
        queue); layouts seen before in this run come from a small cache."""
        cache = self._device_layouts
        found = cache.get(layout)
        if found is not None:
            return found
        index, weights = layout.index(), layout.weights()
        if device.type == "cuda":
            index = index.pin_memory().to(device, non_blocking=True)
            weights = weights.pin_memory().to(device, non_blocking=True)
        else:
            index, weights = index.to(device), weights.to(device)
        if len(cache) >= LAYOUT_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[layout] = (index, weights)
        return index, weights

    def _run_windows(self, denoise: Denoiser, latents, t, layout, index, weights, eps_sum, step: int = 0,
                     guided: bool = True) -> int:
        n, b = len(layout), latents.shape[0]
        start = calls = 0
        while start < n:
            size = min(self.window_batch or n, n - start)
            part = index[start:start + size]
            try:
                eps = denoise(gather(latents, part), t, WindowBatch(part, layout, step=step, guided=guided))
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                self.window_batch = max(1, size // 2)  # remember: later steps start at the size that fit
                _free_cache(latents.device)
                continue
            if eps.shape != (size * b, *latents.shape[1:2], *part.shape[1:]):
                raise RuntimeError(f"denoiser returned {tuple(eps.shape)} for {size * b} windows of {tuple(part.shape[1:])}")
            weighted = eps.float().reshape(size, b, *eps.shape[1:]) * weights[start:start + size, None]
            scatter_add(eps_sum, part, weighted.reshape(eps.shape))
            start += size
            calls += 1
        return calls

    @staticmethod
    def _blend_known(scheduler, latents, known: Known, noise, t) -> torch.Tensor:
        """Replace the kept part by the known latents at noise level ``t`` (clean when ``t`` is None)."""
        if t is None:
            target = known.latents
        else:
            target = scheduler.add_noise(known.latents, noise, t.reshape(1))
        return known.keep * target + (1 - known.keep) * latents


def _timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    """Set the scheduler up for ``steps`` and return the timesteps to run: all of them, or for
    SDEdit (``strength`` < 1) the last ``strength`` share. They stay on the CPU (the scheduler's step
    then reads them without waiting for the GPU); the caller makes one device copy for the model."""
    scheduler.set_timesteps(steps)
    order = getattr(scheduler, "order", 1)
    start = 0
    if strength < 1.0:
        start = (steps - min(int(round(steps * strength)), steps)) * order
        start = min(start, len(scheduler.timesteps) - 1)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def _free_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
