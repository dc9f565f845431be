"""DeepFloyd-IF stage II for panoramas: tiled super-resolution of the RGB, seamless across the wrap,
and the modality upsampled under the new RGB's guidance.

IF's stage-II UNet (IF-II-M/L) denoises a high-resolution image given the stage-I image upscaled to
its size and noise-augmented at a known noise level (``class_labels``), with the prompt's T5 states.
Here it runs on the same tiled sampler as every panorama task (2-D windows of the UNet's native size,
half-window strides, circular in x for a full circle, a fresh offset each step; no whole-canvas window,
as in the published refinement recipe), with IF's learned-variance scheduler through
``if_steps.LearnedVarianceSteps``. The modality is a per-pixel dense map: it is upsampled bilinearly,
then a guided filter (He et al.) aligns its edges with the super-resolved RGB; the box filters wrap in x
for a full circle, so the seam stays closed. A stage-II JointNet would generate the modality itself:
not done yet.

A stage-II folder holds ``unet/`` and ``scheduler/`` (optionally ``image_noising_scheduler/``), as
DeepFloyd/IF-II-M-v1.0 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

NOISE_LEVEL = 250  # IF stage II's default augmentation of the upscaled stage-I image
GUIDE_EPS = 1e-3   # guided filter regulariser (guide in [0, 1])


@dataclass
class StageTwo:
    unet: object
    scheduler: object
    noising_scheduler: object

    @classmethod
    def load(cls, folder: Path, dtype=None, device=None) -> "StageTwo":
        from diffusers import UNet2DConditionModel

        from .loading import load_base_scheduler, load_model_folder

        folder = Path(folder)
        unet = load_model_folder(UNet2DConditionModel, folder / "unet", "IF stage-II unet", dtype, device=device)
        noising = folder / "image_noising_scheduler"
        return cls(unet.to(device) if device is not None else unet, load_base_scheduler(folder / "scheduler"),
                   load_base_scheduler(noising if noising.is_dir() else folder / "scheduler"))


def upsample_wrapped(x, height: int, width: int, circular: bool):
    """Bilinear resize of (N, C, h, w); a full circle sees its other end beyond each side."""
    import torch
    import torch.nn.functional as F

    if not circular:
        return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    w = x.shape[-1]
    padded = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
    scale = width // w
    out = F.interpolate(padded, size=(height, (w + 2) * scale), mode="bilinear", align_corners=False)
    return out[..., scale:scale + width]


def guided_upsample(layer: np.ndarray, guide: np.ndarray, circular: bool, radius: int) -> np.ndarray:
    """``layer`` (h, w, C) at the guide's (H, W) size, its edges following the guide (H, W, 3)."""
    import torch
    from scipy.ndimage import uniform_filter

    height, width = guide.shape[:2]
    up = upsample_wrapped(torch.from_numpy(np.ascontiguousarray(layer.transpose(2, 0, 1)))[None].float(),
                          height, width, circular)[0].numpy().transpose(1, 2, 0)
    gray = guide.astype(np.float64).mean(axis=-1)
    modes = ("nearest", "wrap" if circular else "nearest")

    def box(a):
        return uniform_filter(a, size=2 * radius + 1, mode=modes)

    mean_i, var_i = box(gray), box(gray * gray) - box(gray) ** 2
    out = np.empty_like(up)
    for c in range(up.shape[-1]):
        p = up[..., c].astype(np.float64)
        mean_p = box(p)
        a = (box(gray * p) - mean_i * mean_p) / (var_i + GUIDE_EPS)
        b = mean_p - a * mean_i
        out[..., c] = box(a) * gray + box(b)
    lo, hi = float(layer.min()), float(layer.max())
    return np.clip(out, lo, hi).astype(np.float32)  # no values beyond what stage I made


def super_resolve(stage2: StageTwo, text, image: np.ndarray, *, factor: int, steps: int, seed: int, guidance: float,
                  circular: bool, device, dtype, window_batch: Optional[int] = None, progress=None) -> np.ndarray:
    """The stage-I RGB (h, w, 3) in [0, 1], ``factor`` times larger, tiled; ``text`` = (cond, uncond or None)."""
    import torch

    from worldgen.sampler.tiled import TiledSampler, TilingRecipe

    from .if_steps import LearnedVarianceSteps

    unet = stage2.unet
    window = int(unet.config.sample_size)
    h, w = image.shape[:2]
    height, width = h * factor, w * factor
    low = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float() * 2 - 1
    up = upsample_wrapped(low, height, width, circular)
    generator = torch.Generator().manual_seed(int(seed) + 1)  # its own stream: stage I's is untouched
    level = torch.tensor([NOISE_LEVEL])
    noisy_up = stage2.noising_scheduler.add_noise(up, torch.randn(up.shape, generator=generator), level)
    noisy_up = noisy_up.to(device, dtype)
    cond, uncond = text
    win = (min(window, height), min(window, width))
    recipe = TilingRecipe(window=win, stride=(max(1, win[0] // 2), max(1, win[1] // 2)), circular=circular,
                          global_fraction=0.0)

    def denoise(x, t, windows, conditions=None):
        n = x.shape[0]
        model_in = torch.cat([x[:, :3], windows.crop(noisy_up)], dim=1)
        rows = 2 if uncond is not None else 1
        context = torch.cat([uncond.expand(n, -1, -1), cond.expand(n, -1, -1)]) if rows == 2 else cond.expand(n, -1, -1)
        out = unet(model_in.repeat(rows, 1, 1, 1), t, encoder_hidden_states=context,
                   class_labels=level.to(x.device).expand(n * rows)).sample
        if rows == 2:
            eps = out[:n, :3] + guidance * (out[n:, :3] - out[:n, :3])
            return torch.cat([eps, out[n:, 3:]], dim=1)
        return out

    with torch.no_grad():
        x = TiledSampler(recipe, window_batch=window_batch).sample(
            denoise, LearnedVarianceSteps(stage2.scheduler, images=1), shape=(1, 6, height, width), steps=steps,
            seed=seed, device=device, dtype=dtype, progress=progress)
    return ((x[0, :3].float().cpu().permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
