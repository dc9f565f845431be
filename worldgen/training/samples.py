"""Validation samples: the fixed prompt and seed rendered by ``JointNetPipeline`` during training.

Each sample is saved as one PNG, the RGB image beside the modality plugin's preview of the
generated modality, so a glance at ``OUT/samples/`` shows how the new branch is learning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..scene.atomic import atomic_write_bytes
from ..scene.image_files import encode_png
from .config import TrainConfig

GUIDANCE = 7.5  # the usual Stable Diffusion guidance scale; samples show the model as it will be used


@torch.no_grad()
def render_sample(pipeline, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(RGB (H, W, 3) in [0, 1], modality image (H, W, 3) in [-1, 1] as the VAE decodes it)."""
    device = pipeline.jointnet.device
    generator = torch.Generator(device=device).manual_seed(cfg.validation_seed)
    out = pipeline(cfg.validation_prompt, height=cfg.resolution, width=cfg.resolution,
                   num_inference_steps=cfg.validation_steps, guidance_scale=GUIDANCE, generator=generator,
                   output_type="np")
    return out.images[0], out.modality[0] * 2.0 - 1.0


def save_sample(path: Path, rgb: np.ndarray, modality_image: np.ndarray, spec) -> Path:
    """Write RGB | preview(modality) side by side as a PNG (atomically)."""
    values = spec.decode(modality_image)
    preview = np.asarray(spec.preview(values))
    if preview.dtype != np.uint8:
        preview = (np.clip(preview, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    rgb8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    atomic_write_bytes(path, encode_png(np.concatenate([rgb8, preview], axis=1)))
    return Path(path)
