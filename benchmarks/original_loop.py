"""The baseline: panorama windows denoised the way the original JointNet panorama script does it.

Written from the description of the public script's known defects (docs/jointnet-format.md) so the
benchmark can time it next to worldgen's sampler in the same process, on the same weights:

- the windows of a step go through the model in batches of 8, one batch after another;
- every batch first restores ITS copy of the scheduler's state, steps its own window latents, and
  saves the state again (a deep copy of the scheduler's ``__dict__`` per batch per step);
- classifier-free guidance doubles each batch; the stepped window latents are blended with the
  edge-ramped weights; for steps i <= int(0.4 * steps) (21 of 50) the whole panorama is one more view of weight 5;
- the VAE decodes the whole panorama at once, RGB and modality one after the other;
- float16 weights, eager PyTorch, diffusers' default attention processor.

The windows themselves (64x64, stride 32, a fresh random offset per step, circular wrap) are the same
as worldgen's, from ``worldgen.sampler.windows``, so both loops do the same arithmetic.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from worldgen.sampler.windows import Layout, Window, tile_layout

VIEW_BATCH = 8


@torch.no_grad()
def generate(pipe, prompt: str, *, width: int, height: int, steps: int = 50, guidance: float = 7.5,
             seed: int = 0, window: int = 64, stride: int = 32, global_fraction: float = 0.4,
             global_weight: float = 5.0, on_call=None) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """One panorama: RGB (H, W, 3) and modality (H, W, 1: the channel mean, as the depth plugin reads it)
    in [0, 1], and the final latents (on the CPU).
    ``on_call(x)`` sees each model input."""
    pair, scheduler = pipe.jointnet, copy.deepcopy(pipe.scheduler)
    device, dtype = pair.device, pair.dtype
    c = pipe.latent_channels
    factor = pipe.vae_scale_factor
    h, w = height // factor, width // factor

    cond, uncond = pipe.encode_prompt(prompt, "", True)
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn((1, 2 * c, h, w), generator=generator).to(device, dtype)
    offsets = np.random.default_rng([seed, 0x0FF5E7])
    scheduler.set_timesteps(steps, device=device)
    latents = latents * scheduler.init_noise_sigma
    last_global = int(global_fraction * steps)  # the original: the whole view while i <= int(0.4 * steps)

    states = None
    for i, t in enumerate(scheduler.timesteps):
        offset = int(offsets.integers(stride))
        layouts = [(tile_layout(w, h, (window, window), (stride, stride), circular=True, offset=(offset, 0)), 1.0)]
        if i <= last_global:
            layouts.append((Layout(w, h, (Window(offset, 0, w, h),), circular=True, ramp=0), global_weight))
        batches = [(layout, scale, list(range(s, min(s + VIEW_BATCH, len(layout)))))
                   for layout, scale in layouts for s in range(0, len(layout), VIEW_BATCH)]
        if states is None or len(states) != len(batches):
            base = copy.deepcopy(scheduler.__dict__)
            states = [copy.deepcopy(base) for _ in batches]
        value = torch.zeros_like(latents, dtype=torch.float32)
        count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=device)
        for j, (layout, scale, members) in enumerate(batches):
            index = layout.index(device=device)[members]
            weights = layout.weights(device=device)[members] * scale
            flat = latents.flatten(-2)
            views = flat[0][:, index.reshape(-1)].reshape(2 * c, len(members), *index.shape[1:]).transpose(0, 1)
            scheduler.__dict__.update(states[j])
            x = scheduler.scale_model_input(views, t)
            x2 = torch.cat([x, x])
            context = torch.cat([uncond.expand(len(members), -1, -1), cond.expand(len(members), -1, -1)])
            if on_call is not None:
                on_call(x2[:, :c])
            eps_rgb, eps_mod = pair(x2[:, :c], x2[:, c:], t, context)
            eps = torch.cat([eps_rgb, eps_mod], dim=1)
            eps_u, eps_c = eps.chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
            stepped = scheduler.step(eps, t, views).prev_sample
            states[j] = copy.deepcopy(scheduler.__dict__)
            flat_value = value.view(1, 2 * c, -1)
            flat_count = count.view(1, 1, -1)
            weighted = (stepped.float() * weights).transpose(0, 1).reshape(2 * c, -1)
            flat_value[0].index_add_(1, index.reshape(-1), weighted)
            flat_count[0].index_add_(1, index.reshape(-1), weights.reshape(1, -1))
        latents = (value / count).to(dtype)

    vae = pipe.vae
    images = []
    for part in (latents[:, :c], latents[:, c:]):
        pixels = vae.decode(part.to(vae.dtype) / vae.config.scaling_factor).sample
        images.append(((pixels[0].float().permute(1, 2, 0) + 1) / 2).clamp(0, 1).cpu().numpy())
    return images[0], images[1].mean(axis=-1, keepdims=True), latents.float().cpu()
