"""What ``JointNetPanoramaPipeline`` returns, in the output types diffusers users expect.

``images`` are the RGB panoramas; ``modality`` is the dense layer (depth, normals, ...) after its
modality plugin has decoded it from the VAE's 3-channel image, exactly as worldgen's backend does,
so a "depth" pipeline's ``modality`` holds relative disparity in [0, 1] (near = bright).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from diffusers.utils import BaseOutput

from worldgen.errors import UserInputError

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class JointNetPanoramaPipelineOutput(BaseOutput):
    """``images``: "pil": list of RGB PIL images; "np": float32 (B, H, W, 3) in [0, 1]; "pt": (B, 3, H, W);
    "latent": the (B, 2C, h, w) stack [RGB latent | modality latent].

    ``modality``: "np": float32 (B, H, W, K) in the modality's value range (depth: K = 1, disparity
    in [0, 1]); "pt": (B, K, H, W); "pil": one K = 1 layer becomes a 16-bit grayscale image ("I;16"),
    three channels an 8-bit RGB image of the range mapped to [0, 255]; "latent": None.
    ``modality_name`` names the layer ("depth", "normal", ...)."""

    images: Union[list, np.ndarray, torch.Tensor]
    modality: Optional[Union[list, np.ndarray, torch.Tensor]]
    modality_name: str = "depth"

    @property
    def depth(self):
        """``modality`` for a depth pipeline (the name diffusers' RGB-D pipelines use)."""
        if self.modality_name != "depth":
            raise AttributeError(f"this pipeline makes {self.modality_name!r}, not depth; read .modality")
        return self.modality


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise UserInputError(f"output_type {output_type!r}: use one of {', '.join(OUTPUT_TYPES)}")


def decoded_layers(pixels: torch.Tensor, batch: int, spec) -> tuple[np.ndarray, np.ndarray]:
    """VAE output (2B, 3, H, W) in [-1, 1], RGB images first -> (images (B, H, W, 3) in [0, 1],
    modality (B, H, W, K) through ``spec.decode``), float32 numpy, as the backend's ``_decode``."""
    pixels = pixels.float().cpu()
    images = ((pixels[:batch].permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1).numpy().astype(np.float32)
    modality = np.stack([np.asarray(spec.decode(p.permute(1, 2, 0).clamp(-1, 1).numpy()), np.float32)
                         for p in pixels[batch:]])
    return images, modality


def package(images: np.ndarray, modality: np.ndarray, output_type: str, spec) -> tuple[Any, Any]:
    """numpy layers -> the requested output type ("np", "pt" or "pil")."""
    if output_type == "np":
        return images, modality
    if output_type == "pt":
        return torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(modality).permute(0, 3, 1, 2)
    from diffusers.image_processor import VaeImageProcessor

    return VaeImageProcessor.numpy_to_pil(images), [modality_to_pil(m, spec.value_range) for m in modality]


def modality_to_pil(layer: np.ndarray, value_range: tuple[float, float]):
    """(H, W, K) in ``value_range`` -> a PIL image: 16-bit grayscale for one channel (8 bits would
    band depth), 8-bit RGB for three."""
    from PIL import Image

    lo, hi = value_range
    unit = np.clip((layer - lo) / (hi - lo), 0.0, 1.0)
    if unit.shape[-1] == 1:
        return Image.fromarray(np.round(unit[..., 0] * 65535).astype(np.uint16))  # mode "I;16"
    if unit.shape[-1] == 3:
        return Image.fromarray(np.round(unit * 255).astype(np.uint8))  # mode "RGB"
    raise UserInputError(f"a {unit.shape[-1]}-channel layer has no PIL form; use output_type='np'")
