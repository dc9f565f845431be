"""The DeepFloyd-IF variant: a pixel-space JointNet built from an IF stage-I UNet.

Each branch sees 3 pixel channels in [-1, 1] and predicts 6 (noise + learned variance range); the
modality branch starts as a copy of the IF UNet; text comes from T5 (``text_proj`` maps it inside
each UNet). There is no VAE: the denoised pixels are the output. The scheduler steps the two
branches as separate batch elements, so per-image operations of IF's scheduler (dynamic
thresholding) treat RGB and modality as the separate images they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from worldgen.errors import ModelError, UserInputError
from worldgen.progress import ProgressCallback, report

from .pair import JointNetPair
from .pipeline import JointNetPipelineOutput, PromptEncoding, check_call_options, check_text_width, step_kwargs

# IF stage I's scheduler settings (squared-cosine betas, learned variance, dynamic thresholding).
IF_SCHEDULER = dict(
    num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
    prediction_type="epsilon", thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.5,
    clip_sample=True, clip_sample_range=1.0,
)
# A UNet with IF stage I's block structure, tiny. The real one: block_out_channels (320, 640, 960,
# 1280)-ish, layers_per_block 3, T5-XXL (4096) text states.
TINY_IF_UNET = dict(
    sample_size=16, in_channels=3, out_channels=6, layers_per_block=1, block_out_channels=(16, 32),
    down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
    up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=32, attention_head_dim=8,
    encoder_hid_dim=32, encoder_hid_dim_type="text_proj", addition_embed_type="text",
    addition_embed_type_num_heads=2, resnet_time_scale_shift="scale_shift", resnet_skip_time_act=True,
    resnet_out_scale_factor=1.414, time_embedding_act_fn="gelu", act_fn="gelu",
    cross_attention_norm="group_norm", norm_num_groups=8,
)


def build_tiny_if_components(seed: int = 0) -> dict:
    """A tiny IF-shaped UNet, a tiny T5 encoder + tokenizer and IF's scheduler, built in code."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    torch.manual_seed(seed)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(chr(c), -1.0) for c in range(33, 127)] + [("\u2581", -1.0)]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=77)
    t5 = T5EncoderModel(T5Config(vocab_size=len(pieces), d_model=32, d_kv=8, d_ff=37, num_layers=1,
                                 num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0))
    return {
        "unet": UNet2DConditionModel(**TINY_IF_UNET).eval(),
        "text_encoder": t5.eval(),
        "tokenizer": tokenizer,
        "scheduler": DDPMScheduler(**IF_SCHEDULER),
    }


def build_tiny_if_stage2(seed: int = 0) -> dict:
    """A tiny IF stage-II UNet (6 input channels: noisy image + upscaled stage-I image; the noise
    level of the latter as a timestep class label), 4x the tiny stage I's size, with IF's scheduler."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(seed + 2)
    config = {**TINY_IF_UNET, "sample_size": 4 * TINY_IF_UNET["sample_size"], "in_channels": 6,
              "class_embed_type": "timestep"}
    return {"unet": UNet2DConditionModel(**config).eval(), "scheduler": DDPMScheduler(**IF_SCHEDULER)}


class DeepFloydJointNetPipeline(PromptEncoding, DiffusionPipeline):
    """Text to RGB + modality in pixel space; ``jointnet`` is the JointNetPair of two IF UNets."""

    model_cpu_offload_seq = "text_encoder->jointnet"

    def __init__(self, tokenizer, text_encoder, scheduler, jointnet: JointNetPair):
        super().__init__()
        if not jointnet.learned_variance:
            raise ModelError("a DeepFloyd JointNet predicts noise and variance (out = 2 x in channels); "
                             "this pair does not; use JointNetPipeline for latent checkpoints")
        check_text_width(text_encoder, jointnet)
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, scheduler=scheduler, jointnet=jointnet)

    @classmethod
    def from_if_unet(cls, unet, text_encoder, tokenizer, scheduler,
                     masked_latent_input: bool = False) -> "DeepFloydJointNetPipeline":
        """A JointNet whose two branches copy the IF stage-I ``unet``, exchange at zero."""
        return cls(tokenizer, text_encoder, scheduler, JointNetPair.from_unet(unet, masked_latent_input))

    @classmethod
    def from_pretrained(cls, jointnet_path, base_model, torch_dtype: Optional[torch.dtype] = None,
                        device=None, scheduler: Optional[str] = None) -> "DeepFloydJointNetPipeline":
        """A checkpoint folder (unet/ + jointnet/) with an IF stage-I base (text_encoder, tokenizer, scheduler)."""
        from .loading import (BASE_PARTS_PIXEL, check_base_dir, load_base_scheduler, load_pair,
                              load_text_encoder, load_tokenizer)

        base = check_base_dir(Path(base_model), BASE_PARTS_PIXEL)
        pipe = cls(load_tokenizer(base / "tokenizer"), load_text_encoder(base / "text_encoder", torch_dtype),
                   load_base_scheduler(base / "scheduler", scheduler), load_pair(Path(jointnet_path), torch_dtype))
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, save_directory, modality: Optional[str] = None) -> Path:
        from .loading import save_pair

        return save_pair(self.jointnet, Path(save_directory), modality=modality)

    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding="max_length", max_length=77, truncation=True,
                                add_special_tokens=True, return_tensors="pt")
        device = self.text_encoder.device
        hidden = self.text_encoder(tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device))[0]
        return hidden.to(dtype=self.jointnet.dtype, device=self.jointnet.device)

    @torch.no_grad()
    def __call__(self, prompt, height: Optional[int] = None, width: Optional[int] = None,
                 num_inference_steps: int = 100, guidance_scale: float = 7.0, negative_prompt=None,
                 generator: Optional[torch.Generator] = None, latents: Optional[torch.Tensor] = None,
                 output_type: str = "np", *, progress: Optional[ProgressCallback] = None) -> JointNetPipelineOutput:
        """Generate; ``latents`` (here: pixels) is the (B, 6, H, W) stack of RGB and modality noise."""
        check_call_options(output_type, num_inference_steps)
        size = self.jointnet.unet.config.sample_size
        height, width = height or size, width or size
        do_cfg = guidance_scale > 1.0
        cond, uncond = self.encode_prompt(prompt, negative_prompt, do_cfg)
        batch, c = cond.shape[0], self.jointnet.in_channels
        device, dtype = self.jointnet.device, self.jointnet.dtype
        shape = (batch, 2 * c, height, width)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise UserInputError(f"latents have shape {tuple(latents.shape)}; expected {shape}")
        scheduler = self.scheduler
        scheduler.set_timesteps(num_inference_steps, device=device)
        # Branches as batch elements: (B, 2C, H, W) -> (2B, C, H, W), RGB of every sample first.
        x = torch.cat([latents[:, :c], latents[:, c:]]).to(device=device, dtype=dtype) * scheduler.init_noise_sigma
        learned = getattr(scheduler.config, "variance_type", None) in ("learned", "learned_range")
        extra = step_kwargs(scheduler, generator)

        for i, t in enumerate(scheduler.timesteps):
            inp = scheduler.scale_model_input(x, t)
            eps_rgb, eps_mod = self.jointnet.guided(inp[:batch], inp[batch:], t, cond, uncond, guidance_scale)
            out = torch.cat([eps_rgb, eps_mod])
            if not learned:
                out = out[:, :c]
            x = scheduler.step(out, t, x, **extra).prev_sample
            report(progress, "denoise", i + 1, len(scheduler.timesteps))

        stacked = torch.cat([x[:batch], x[batch:]], dim=1)
        if output_type == "latent":
            return JointNetPipelineOutput(images=stacked, modality=None)
        rgb, modality = ((x[:batch] / 2 + 0.5).clamp(0, 1).float(), (x[batch:] / 2 + 0.5).clamp(0, 1).float())
        if output_type == "np":
            rgb, modality = (t.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32) for t in (rgb, modality))
        return JointNetPipelineOutput(images=rgb, modality=modality)
