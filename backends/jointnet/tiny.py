"""A tiny random JointNet checkpoint with its own base model, in the official layout.

For tests and demos: ``DIR/unet`` + ``DIR/jointnet`` (the checkpoint), ``DIR/base`` (vae, text_encoder,
tokenizer, scheduler, unet, model_index.json, as stabilityai/stable-diffusion-2-1-base is laid out)
and ``DIR/worldgen.json`` (the modality). The exchange layers get small random values so that code
using the checkpoint really exercises the exchange. Everything is built in code: no downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from worldgen.errors import UserInputError

# sample_size 64 latent cells (512 px), as SD 2.1-base: samplers size their windows from it.
# Attention only at the lowest level (16x16 tokens for a 64x64 window) keeps a CPU demo panorama
# quick; full-resolution attention would be ~10x slower at these sizes.
TINY_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32, 32),
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=(2, 2, 4), norm_num_groups=8,
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
    norm_num_groups=8, sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)
# Four VAE blocks: 8x downsampling, as in SD, so latent sizes match the real model's.
# The SD 2.1-base scheduler settings.
SD21_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
    timestep_spacing="leading",
)
EXCHANGE_STD = 0.05


def tiny_tokenizer():
    """A CLIP BPE tokenizer over single characters (no merges): enough to turn prompts into ids."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for code in range(33, 127):
        for token in (chr(code), chr(code) + "</w>"):
            vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_base(seed: int = 0, sample_size: int = TINY_UNET["sample_size"]) -> dict:
    """Random vae, text_encoder, tokenizer, scheduler and unet shaped like SD 2.1-base, only tiny.

    ``sample_size`` is the UNet's native latent size, from which samplers size their windows: tests
    pass a small one so that small panoramas already span several windows (weights are unaffected)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                                 num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                                 projection_dim=32, hidden_act="gelu", bos_token_id=0, eos_token_id=1,
                                 pad_token_id=1)
    return {
        "vae": AutoencoderKL(**TINY_VAE).eval(),
        "text_encoder": CLIPTextModel(text_config).eval(),
        "tokenizer": tokenizer,
        "scheduler": DDIMScheduler(**SD21_SCHEDULER),
        "unet": UNet2DConditionModel(**{**TINY_UNET, "sample_size": sample_size}).eval(),
    }


def build_tiny_pair(unet, inpaint: bool = False, seed: int = 0):
    """A pair from ``unet`` whose modality branch differs from it and whose exchange is non-zero."""
    import torch

    from .pair import JointNetPair

    pair = JointNetPair.from_unet(unet, masked_latent_input=inpaint)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # A fine-tuned modality branch has its own weights; mimic that with a small perturbation.
        for param in pair.jointnet.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
        for branch in (pair.unet, pair.jointnet):
            for module in branch.exchange_modules():
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * EXCHANGE_STD)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * EXCHANGE_STD)
    return pair.eval()


def _write_base(parts: dict, base: Path) -> None:
    from diffusers import __version__ as diffusers_version

    from .loading import quiet_loading

    for name in ("vae", "unet"):
        parts[name].save_pretrained(base / name, safe_serialization=True)
    with quiet_loading():
        parts["text_encoder"].save_pretrained(base / "text_encoder", safe_serialization=True)
    tokenizer = parts["tokenizer"]
    tokenizer.save_pretrained(base / "tokenizer")
    # The released base also has the slow-tokenizer files; write them so older loaders work too.
    (base / "tokenizer" / "vocab.json").write_text(json.dumps(tokenizer.get_vocab(), indent=1) + "\n", encoding="utf-8")
    (base / "tokenizer" / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    parts["scheduler"].save_config(base / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers_version,
        "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (base / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def _write_if_base(parts: dict, base: Path) -> None:
    """An IF stage-I base as DeepFloyd/IF-I-M-v1.0 is laid out: no vae/, a T5 text_encoder/."""
    from diffusers import __version__ as diffusers_version

    from .loading import quiet_loading

    parts["unet"].save_pretrained(base / "unet", safe_serialization=True)
    with quiet_loading():
        parts["text_encoder"].save_pretrained(base / "text_encoder", safe_serialization=True)
    parts["tokenizer"].save_pretrained(base / "tokenizer")
    parts["scheduler"].save_config(base / "scheduler")
    index = {"_class_name": "IFPipeline", "_diffusers_version": diffusers_version,
             "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "T5Tokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "feature_extractor": [None, None], "safety_checker": [None, None], "watermarker": [None, None],
             "requires_safety_checker": False}
    (base / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def write_tiny_checkpoint(directory, seed: int = 0, inpaint: bool = False, modality: str = "depth",
                          sample_size: int = TINY_UNET["sample_size"], family: str = "sd") -> Path:
    """Write a tiny checkpoint + base to ``directory`` (must not exist or be empty); returns it.

    ``family`` "if" makes a pixel-space DeepFloyd-IF model (IF-shaped UNet, T5, IF's scheduler).
    The folder is assembled next to its destination and renamed into place, so a crash never
    leaves a half-written checkpoint under the final name.
    """
    from .branch_files import write_metadata
    from .loading import save_pair

    directory = Path(directory).expanduser().absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserInputError(f"{directory} already exists and is not empty; choose a new folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent))
    try:
        if family == "if":
            from .deepfloyd import build_tiny_if_components, build_tiny_if_stage2

            parts = build_tiny_if_components(seed)
            _write_if_base(parts, staging / "base")
            stage2 = build_tiny_if_stage2(seed)  # stage II (super-resolution), as DeepFloyd/IF-II-M is laid out
            stage2["unet"].save_pretrained(staging / "stage2" / "unet", safe_serialization=True)
            stage2["scheduler"].save_config(staging / "stage2" / "scheduler")
        elif family == "sd":
            parts = build_tiny_base(seed, sample_size)
            _write_base(parts, staging / "base")
        else:
            raise UserInputError(f"family {family!r} is not sd or if")
        save_pair(build_tiny_pair(parts["unet"], inpaint=inpaint, seed=seed), staging)
        write_metadata(staging, [modality], family=family)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory
