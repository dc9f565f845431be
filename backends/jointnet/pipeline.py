"""Text to RGB + modality with a latent JointNet (Stable Diffusion 2.1-base style), diffusers style.

The latent of one sample is the (8, h, w) stack of the RGB latent and the modality latent, as in the
original; the scheduler steps the whole stack, so any diffusers scheduler can be swapped in. Both
branches and both halves of classifier-free guidance are computed in one forward per step.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from worldgen.errors import ModelError, UserInputError
from worldgen.progress import ProgressCallback, report

from .pair import JointNetPair


@dataclass
class JointNetPipelineOutput(BaseOutput):
    """``images``: RGB; ``modality``: the decoded modality image (3 channels as the VAE decodes them).

    output_type "np": float32 (B, H, W, 3) in [0, 1]; "pt": (B, 3, H, W) in [0, 1];
    "latent": ``images`` is the (B, 8, h, w) latent stack and ``modality`` is None.
    """

    images: Union[np.ndarray, torch.Tensor]
    modality: Optional[Union[np.ndarray, torch.Tensor]]


def step_kwargs(scheduler, generator, eta: float = 0.0) -> dict:
    """Only the optional ``step`` arguments this scheduler accepts (they differ between schedulers)."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {}
    if "generator" in accepted:
        kwargs["generator"] = generator
    if "eta" in accepted:
        kwargs["eta"] = eta
    return kwargs


def check_text_width(text_encoder, jointnet: JointNetPair) -> None:
    """The text encoder's width must be what the UNet branches read (else a matmul fails mid-run)."""
    config = text_encoder.config
    width = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    unet = jointnet.unet.config
    expected = unet.encoder_hid_dim or unet.cross_attention_dim
    if isinstance(expected, (list, tuple)):
        expected = expected[0]
    if width is not None and width != expected:
        raise ModelError(f"the base text encoder is {width} wide but the JointNet expects {expected}; "
                         f"use the base model the checkpoint was trained on (--base)")


def check_call_options(output_type: str, num_inference_steps: int) -> None:
    """The argument checks every JointNet pipeline's ``__call__`` starts with."""
    if output_type not in ("np", "pt", "latent"):
        raise UserInputError(f"output_type {output_type!r}: use 'np', 'pt' or 'latent'")
    if num_inference_steps < 1:
        raise UserInputError(f"num_inference_steps {num_inference_steps} must be at least 1")


class PromptEncoding:
    """``encode_prompt`` for pipelines that define ``_encode_text(list[str]) -> (B, L, D)``
    (CLIP for Stable Diffusion, T5 for DeepFloyd-IF): one place for prompt/negative handling."""

    @torch.no_grad()
    def encode_prompt(self, prompt, negative_prompt=None, do_cfg: bool = True):
        """Text embeddings ``(cond, uncond)``, each (B, L, D); ``uncond`` is None without CFG.

        ``prompt``: a string or a list of B strings; ``negative_prompt``: None (""), a string, or B strings.
        """
        early = self.__dict__.get("_early_text")
        ready = early.take(prompt, negative_prompt, do_cfg) if early is not None else None
        if ready is not None:  # encoded while the branches loaded (early_text.py)
            self.__dict__["_early_text"] = None
            return self._to_model(ready[0]), (self._to_model(ready[1]) if ready[1] is not None else None)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise UserInputError("no prompt given; pass at least one prompt")
        cond = self._encode_text(prompts)
        if not do_cfg:
            return cond, None
        negatives = negative_prompt if negative_prompt is not None else ""
        negatives = [negatives] * len(prompts) if isinstance(negatives, str) else list(negatives)
        if len(negatives) != len(prompts):
            raise UserInputError(f"{len(negatives)} negative prompts for {len(prompts)} prompts; give one per prompt")
        return cond, self._encode_text(negatives)

    def _to_model(self, hidden: torch.Tensor) -> torch.Tensor:
        """Text hidden states in the model's dtype, on its device."""
        return hidden.to(dtype=self.jointnet.dtype, device=self.jointnet.device)


class JointNetPipeline(PromptEncoding, DiffusionPipeline):
    """vae, text_encoder, tokenizer, scheduler from the base model; ``jointnet`` is the JointNetPair."""

    model_cpu_offload_seq = "text_encoder->jointnet->vae"

    def __init__(self, vae, text_encoder, tokenizer, scheduler, jointnet: JointNetPair):
        super().__init__()
        check_text_width(text_encoder, jointnet)
        if vae.config.latent_channels != jointnet.in_channels:
            raise ModelError(f"the base VAE makes {vae.config.latent_channels}-channel latents but the JointNet "
                             f"takes {jointnet.in_channels}; use the base model the checkpoint was trained on")
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                              jointnet=jointnet)

    # ---- loading and saving ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, jointnet_path, base_model=None, torch_dtype: Optional[torch.dtype] = None,
                        device=None, scheduler: Optional[str] = None,
                        weights_dir=None, text_hint=None) -> "JointNetPipeline":
        """Load a checkpoint folder (unet/ + jointnet/) and its base model (vae, text encoder, ...).

        ``base_model`` may be omitted when the checkpoint folder holds its own ``base/`` (as the
        folders written by ``worldgen models tiny`` do). ``scheduler``: a name from
        ``schedulers.SCHEDULERS``; None keeps the base model's scheduler. ``weights_dir``: the same
        checkpoint converted to safetensors in ``torch_dtype`` (``store.converted_weights``), read
        instead of the original ``.bin``. ``text_hint``: ``[prompt, negative, do_cfg]`` to encode
        while the branches load (early_text.py).
        """
        from . import early_text
        from .loading import is_base_dir, load_pair, load_sd_base

        jointnet_path = Path(jointnet_path)
        if base_model is None:
            if not is_base_dir(jointnet_path / "base"):
                raise ModelError(f"{jointnet_path} needs its base model; pass base_model= (CLI: --base) with a "
                                 f"diffusers-layout stabilityai/stable-diffusion-2-1-base")
            base_model = jointnet_path / "base"
        from worldgen.phases import phase

        # Every part is read straight onto the device (pipe.to then has nothing left to move).
        parts = load_sd_base(Path(base_model), torch_dtype, scheduler, device=device)
        early = early_text.start(text_hint, parts["tokenizer"], parts["text_encoder"])
        with phase("load jointnet"):
            pair = load_pair(weights_dir or jointnet_path, torch_dtype, device)
        if early is not None:
            with phase("encode text (while loading)"):
                early.join()  # done before anyone moves the text encoder (low-memory mode does)
        pipe = cls(jointnet=pair, **parts)
        pipe._early_text = early
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, save_directory, modality: Optional[str] = None) -> Path:
        """Write the JointNet checkpoint (unet/ + jointnet/, safetensors); the base is not copied."""
        from .loading import save_pair

        return save_pair(self.jointnet, Path(save_directory), modality=modality)

    # ---- building blocks the samplers share --------------------------------------------------------

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels of ONE branch's latent; the stack has twice as many."""
        return self.jointnet.in_channels

    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        from .early_text import text_hidden

        return self._to_model(text_hidden(self.tokenizer, self.text_encoder, texts))

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> scaled latents (B, 4, h, w); used for RGB and modality alike."""
        vae = self.vae
        x = (images.to(device=vae.device, dtype=vae.dtype) * 2 - 1)
        latents = torch.cat([vae.encode(x[i:i + 1]).latent_dist.sample(generator) for i in range(x.shape[0])])
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, 4, h, w) -> (B, 3, H, W) float32 in [0, 1], one sample at a time."""
        vae = self.vae
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        z = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor + shift
        images = torch.cat([vae.decode(z[i:i + 1]).sample for i in range(z.shape[0])])
        return (images.float() / 2 + 0.5).clamp(0, 1)

    # ---- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, prompt, height: Optional[int] = None, width: Optional[int] = None,
                 num_inference_steps: int = 50, guidance_scale: float = 7.5, negative_prompt=None,
                 generator: Optional[torch.Generator] = None, latents: Optional[torch.Tensor] = None,
                 output_type: str = "np", *, progress: Optional[ProgressCallback] = None) -> JointNetPipelineOutput:
        """Generate RGB and modality for each prompt; ``latents`` is the (B, 8, h, w) starting noise."""
        check_call_options(output_type, num_inference_steps)
        factor = self.vae_scale_factor
        default = self.jointnet.unet.config.sample_size * factor
        height, width = height or default, width or default
        if height % factor or width % factor or height <= 0 or width <= 0:
            raise UserInputError(f"size {width}x{height} must be positive multiples of {factor}")

        do_cfg = guidance_scale > 1.0
        cond, uncond = self.encode_prompt(prompt, negative_prompt, do_cfg)
        batch, c = cond.shape[0], self.latent_channels
        device, dtype = self.jointnet.device, self.jointnet.dtype
        shape = (batch, 2 * c, height // factor, width // factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise UserInputError(f"latents have shape {tuple(latents.shape)}; expected {shape} "
                                 f"(RGB and modality latents stacked on channels)")
        scheduler = self.scheduler
        scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
        masks = self._full_generation_masks(latents)
        extra = step_kwargs(scheduler, generator)

        timesteps = scheduler.timesteps
        for i, t in enumerate(timesteps):
            x = scheduler.scale_model_input(latents, t)
            eps_rgb, eps_mod = self.jointnet.guided(x[:, :c], x[:, c:], t, cond, uncond, guidance_scale, *masks)
            latents = scheduler.step(torch.cat([eps_rgb, eps_mod], dim=1), t, latents, **extra).prev_sample
            report(progress, "denoise", i + 1, len(timesteps))

        if output_type == "latent":
            return JointNetPipelineOutput(images=latents, modality=None)
        report(progress, "decode", 0, 2)
        rgb = self.decode_latents(latents[:, :c])
        report(progress, "decode", 1, 2)
        modality = self.decode_latents(latents[:, c:])
        report(progress, "decode", 2, 2)
        if output_type == "np":
            rgb, modality = (t.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32) for t in (rgb, modality))
        return JointNetPipelineOutput(images=rgb, modality=modality)

    def _full_generation_masks(self, latents: torch.Tensor) -> tuple:
        """Inpainting checkpoints generating from text: mask 1 everywhere, nothing known (zeros)."""
        if not self.jointnet.has_masked_latent_input:
            return ()
        n, _, h, w = latents.shape
        c = self.latent_channels
        mask = torch.ones(n, 1, h, w, device=latents.device, dtype=latents.dtype)
        known = torch.zeros(n, c, h, w, device=latents.device, dtype=latents.dtype)
        return mask, known, mask, known


def load_jointnet(checkpoint_dir, base_dir=None, device=None, dtype: Optional[torch.dtype] = None,
                  scheduler: Optional[str] = None, weights_dir=None, text_hint=None) -> JointNetPipeline:
    """The pipeline for a checkpoint folder and its base (None: the checkpoint's own ``base/``)."""
    return JointNetPipeline.from_pretrained(checkpoint_dir, base_model=base_dir, torch_dtype=dtype,
                                            device=device, scheduler=scheduler, weights_dir=weights_dir,
                                            text_hint=text_hint)
