"""Which kind of base model a folder holds, from its files: Stable Diffusion or DeepFloyd-IF.

Stable Diffusion (family ``"sd"``) works in the latent space of its ``vae/``; DeepFloyd-IF (``"if"``)
denoises pixels, has no VAE, and encodes prompts with T5 (``text_encoder/`` is a ``T5EncoderModel``).
The parts each needs are the folders a base must have.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

PARTS = {"sd": ("vae", "text_encoder", "tokenizer", "scheduler"), "if": ("text_encoder", "tokenizer", "scheduler")}
T5_CLASSES = ("T5EncoderModel",)
BASE_HINT = {"sd": "a diffusers-layout copy of stabilityai/stable-diffusion-2-1-base",
             "if": "a diffusers-layout copy of DeepFloyd/IF-I-M-v1.0 (or -L, -XL)"}


def base_family(path: Path) -> Optional[str]:
    """``"sd"`` when the folder has a VAE, ``"if"`` when it has none and a T5 text encoder, else None."""
    path = Path(path)
    if (path / "vae").is_dir():
        return "sd"
    config = path / "text_encoder" / "config.json"
    try:
        arch = (json.loads(config.read_text(encoding="utf-8")).get("architectures") or [None])[0]
    except (OSError, ValueError, AttributeError):
        return None
    return "if" if arch in T5_CLASSES else None


def base_parts(path: Path) -> tuple[str, ...]:
    """The folders a base of this folder's family must have (Stable Diffusion's when unknown)."""
    return PARTS[base_family(path) or "sd"]
