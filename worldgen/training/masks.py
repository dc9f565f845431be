"""Random inpainting masks for the inpaint stage, at latent resolution (1 = generate here).

Each example draws one kind of task, so one model learns them all:
- ``rgb_to_modality``: RGB fully known, the modality fully generated (estimation);
- ``modality_to_rgb``: the modality fully known, RGB fully generated (conditioned generation);
- ``everything``: both fully generated (plain joint generation stays intact);
- ``shared``: one spatial region, the same in both (joint inpainting);
- ``separate``: an independent spatial region per branch;
- ``outpaint``: a band at the left or right edge in both (panorama expansion, which grows sideways).
Spatial regions are unions of boxes and low-frequency blobs, which cover both sharp-edged
selections and free-form strokes.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

MASK_KINDS = ("rgb_to_modality", "modality_to_rgb", "everything", "shared", "separate", "outpaint")
# The channel-wise conversions are the inpainting model's main new abilities, hence their weight.
DEFAULT_WEIGHTS = {"rgb_to_modality": 0.2, "modality_to_rgb": 0.2, "everything": 0.1,
                   "shared": 0.25, "separate": 0.1, "outpaint": 0.15}


def _uniform(generator: Optional[torch.Generator], low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _boxes(height: int, width: int, generator) -> torch.Tensor:
    mask = torch.zeros(height, width)
    for _ in range(1 + int(torch.randint(0, 3, (), generator=generator))):
        h = max(1, round(height * _uniform(generator, 0.15, 0.7)))
        w = max(1, round(width * _uniform(generator, 0.15, 0.7)))
        top = int(torch.randint(0, height - h + 1, (), generator=generator))
        left = int(torch.randint(0, width - w + 1, (), generator=generator))
        mask[top:top + h, left:left + w] = 1.0
    return mask


def _blob(height: int, width: int, generator) -> torch.Tensor:
    coarse = torch.rand(1, 1, max(2, height // 4), max(2, width // 4), generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    # Threshold at a random quantile so the masked share varies from small spots to most of the frame.
    level = torch.quantile(smooth.flatten(), _uniform(generator, 0.3, 0.85))
    return (smooth > level).float()


def _region(height: int, width: int, generator) -> torch.Tensor:
    mask = _boxes(height, width, generator) if _uniform(generator) < 0.5 else _blob(height, width, generator)
    if mask.sum() == 0:  # never a no-op task
        mask[height // 4: height // 4 + max(1, height // 2), width // 4: width // 4 + max(1, width // 2)] = 1.0
    return mask


def _band(height: int, width: int, generator) -> torch.Tensor:
    mask = torch.zeros(height, width)
    w = max(1, round(width * _uniform(generator, 0.15, 0.6)))
    if _uniform(generator) < 0.5:
        mask[:, :w] = 1.0
    else:
        mask[:, width - w:] = 1.0
    return mask


def random_masks(batch: int, height: int, width: int, generator: Optional[torch.Generator] = None,
                 weights: Optional[dict] = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Masks ``(mask_rgb, mask_modality)``, each (batch, 1, height, width) float32 of 0/1, and the
    kind drawn per example. ``generator`` None uses the global torch RNG (which checkpoints restore)."""
    weights = weights or DEFAULT_WEIGHTS
    unknown = set(weights) - set(MASK_KINDS)
    if unknown:
        raise ValueError(f"unknown mask kinds {sorted(unknown)}; known: {MASK_KINDS}")
    kinds = [k for k in MASK_KINDS if weights.get(k, 0) > 0]
    probs = torch.tensor([float(weights[k]) for k in kinds])
    picks = torch.multinomial(probs, batch, replacement=True, generator=generator).tolist()
    ones, zeros = torch.ones(height, width), torch.zeros(height, width)
    rgb, modality, drawn = [], [], []
    for pick in picks:
        kind = kinds[pick]
        if kind == "rgb_to_modality":
            pair = (zeros, ones)
        elif kind == "modality_to_rgb":
            pair = (ones, zeros)
        elif kind == "everything":
            pair = (ones, ones)
        elif kind == "shared":
            region = _region(height, width, generator)
            pair = (region, region)
        elif kind == "separate":
            pair = (_region(height, width, generator), _region(height, width, generator))
        else:
            band = _band(height, width, generator)
            pair = (band, band)
        rgb.append(pair[0])
        modality.append(pair[1])
        drawn.append(kind)
    return torch.stack(rgb)[:, None].contiguous(), torch.stack(modality)[:, None].contiguous(), drawn


def masked_latents(latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The known part of a latent: zero where the mask says "generate" (mask >= 0.5)."""
    return latents * (mask < 0.5).to(latents.dtype)
