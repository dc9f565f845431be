"""Random-weight JointNet components shaped like Stable Diffusion 2.1-base, built in code.

Speed and memory depend on the shapes, not on the values, so the benchmark needs no download: the
UNet branches, VAE and text encoder below have the released models' configurations and random
weights (PyTorch's default initialisation; JointNet's exchange layers get small random values so
they run like trained ones). The tokenizer is worldgen's character-level test tokenizer: prompts
become 77 ids like CLIP's. ``tiny=True`` gives the test-sized models for a CPU dry run.
"""

from __future__ import annotations

import contextlib

import torch

# stabilityai/stable-diffusion-2-1-base: unet/config.json, vae/config.json, text_encoder/config.json.
SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, norm_num_groups=32,
    flip_sin_to_cos=True, freq_shift=0, act_fn="silu", upcast_attention=False,
)
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=768, scaling_factor=0.18215,
)
SD21_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                 max_position_embeddings=77, projection_dim=512, hidden_act="gelu")
EXCHANGE_STD = 0.02


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build(device, dtype: torch.dtype, *, tiny: bool = False, seed: int = 0, masked_input: bool = False) -> dict:
    """vae, text_encoder, tokenizer, scheduler and jointnet (the pair), on ``device`` in ``dtype``.

    Parameters are created on the device in the target dtype directly (no float32 copy on the host),
    so building the full-size set takes seconds and never needs more memory than the weights."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from worldgen.backends.jointnet.model import JointNetModel
    from worldgen.backends.jointnet.pair import JointNetPair
    from worldgen.backends.jointnet.tiny import SD21_SCHEDULER, TINY_UNET, TINY_VAE, tiny_tokenizer

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    # Tiny: 8-cell windows (as the sampler tests use) so a small canvas still needs many windows.
    unet_config = dict(TINY_UNET, sample_size=8) if tiny else dict(SD21_UNET)
    if masked_input:  # the inpainting checkpoint's layout (rgbd_inpaint_sd21b): issue 22's explore tasks
        unet_config["has_masked_latent_input"] = True
    vae_config = dict(TINY_VAE) if tiny else dict(SD21_VAE)
    text = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, projection_dim=32, hidden_act="gelu") if tiny else dict(SD21_TEXT)
    text_config = CLIPTextConfig(vocab_size=len(tokenizer) if tiny else 49408, bos_token_id=0, eos_token_id=1,
                                 pad_token_id=1, **text)
    with torch.device(device), _default_dtype(dtype), torch.no_grad():
        rgb = JointNetModel(**unet_config).eval()
        modality = JointNetModel(**unet_config).eval()
        for branch in (rgb, modality):
            for module in branch.exchange_modules():
                module.weight.normal_(0.0, EXCHANGE_STD)
                module.bias.normal_(0.0, EXCHANGE_STD)
        vae = AutoencoderKL(**vae_config).eval()
        text_encoder = CLIPTextModel(text_config).eval()
    return {"vae": vae, "text_encoder": text_encoder.to(dtype), "tokenizer": tokenizer,
            "scheduler": DDIMScheduler(**SD21_SCHEDULER), "jointnet": JointNetPair(rgb, modality).eval()}


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())
