"""The networks a run trains and the frozen ones it uses, built from the ``--base`` folder.

Stage 1 starts from a diffusers Stable Diffusion or DeepFloyd-IF stage-I folder: its UNet is copied
into both branches of a ``JointNetPair`` with zero exchange layers. An IF base (no VAE, T5 text
encoder; see ``backends/jointnet/families.py``) trains in pixel space: the images and the encoded
modality ARE the denoised tensors, and validation samples come from ``DeepFloydJointNetPipeline``.
Stage 2 and the inpaint stage start from a JointNet checkpoint; the inpaint stage gives
each branch the masked-latent input (zero-initialised, so the model starts as the one given).
The VAE, text encoder, tokenizer and noise schedule come from ``--components``, from the
checkpoint's own ``base/`` folder, or from the base folder itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..errors import ModelError, UserInputError


@dataclass
class Components:
    """The frozen parts: VAE, text encoder, tokenizer, and two
    schedules from the base's config: DDPM for adding training noise, DDIM for validation samples."""

    folder: Path
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    noise_scheduler: object
    sample_scheduler: object


def is_stable_diffusion_dir(folder: Path) -> bool:
    config = Path(folder) / "unet" / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("_class_name") == "UNet2DConditionModel"
    except (OSError, ValueError):
        return False


def components_folder(base: Path, components: Optional[Path]) -> Path:
    """Where the VAE/text encoder/tokenizer/scheduler are: --components, else BASE/base/ (a
    checkpoint that carries its base, as worldgen's exports do), else BASE itself."""
    from ..backends.jointnet.families import base_parts

    if components is not None:
        folder = Path(components)
        missing = [d for d in base_parts(folder) if not (folder / d).is_dir()]
        if missing:
            raise UserInputError(f"--components {folder} has no {', '.join(missing)}/; give a diffusers Stable Diffusion "
                                 "or DeepFloyd-IF stage-I folder")
        return folder
    for folder in (Path(base) / "base", Path(base)):
        if all((folder / d).is_dir() for d in base_parts(folder)):
            return folder
    raise UserInputError(
        f"{base} has no vae/, text_encoder/, tokenizer/ and scheduler/ (nor a base/ folder with them); pass "
        "--components <Stable Diffusion folder> (e.g. a local stable-diffusion-2-1-base)"
    )


def load_components(folder: Path, device, dtype: torch.dtype = torch.float32) -> Components:
    """Frozen VAE and text encoder on ``device`` (in ``dtype`` where that is safe) plus tokenizer and schedules."""
    from diffusers import DDPMScheduler

    from ..backends.jointnet.families import base_family
    from ..backends.jointnet.loading import load_sd_base

    if base_family(folder) == "if":
        return _pixel_components(Path(folder), device, dtype)
    parts = load_sd_base(Path(folder), scheduler="ddim")
    vae = parts["vae"]
    # bf16 has float32's range, so the VAE may run in it (measured on an H200: encoding a 512 px
    # batch of 4 takes 27 ms instead of 39); a VAE flagged force_upcast overflows in fp16 and
    # stays in float32 then.
    upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", True)
    vae_dtype = torch.float32 if upcast else dtype
    vae = _placed(vae, device, vae_dtype).requires_grad_(False).eval()
    text_encoder = _placed(parts["text_encoder"], device, dtype).requires_grad_(False).eval()
    # Training adds noise with the base's own beta schedule (DDPM's add_noise/get_velocity).
    noise_scheduler = DDPMScheduler.from_config(parts["scheduler"].config)
    return Components(Path(folder), vae, text_encoder, parts["tokenizer"], noise_scheduler, parts["scheduler"])


def _pixel_components(folder: Path, device, dtype: torch.dtype) -> Components:
    """An IF stage-I base: no VAE; T5 text encoder; IF's own schedule for noise and for samples."""
    from diffusers import DDPMScheduler

    from ..backends.jointnet.loading import load_base_scheduler, load_text_encoder, load_tokenizer

    text_encoder = _placed(load_text_encoder(folder / "text_encoder"), device, dtype).requires_grad_(False).eval()
    scheduler = load_base_scheduler(folder / "scheduler")
    return Components(folder, None, text_encoder, load_tokenizer(folder / "tokenizer"),
                      DDPMScheduler.from_config(scheduler.config), scheduler)


def latent_channels(components: Components) -> int:
    """Channels of what the branches denoise: the VAE's latents, or RGB pixels (IF)."""
    return components.vae.config.latent_channels if components.vae is not None else 3


def _placed(module, device, dtype: torch.dtype):
    """``module`` on ``device`` in ``dtype``, converting only what differs (diffusers warns on every dtype cast)."""
    module = module.to(device)
    return module if next(module.parameters()).dtype == dtype else module.to(dtype=dtype)


def make_pipeline(components: Components, pair):
    """A ``JointNetPipeline`` (IF: ``DeepFloydJointNetPipeline``) around the pair being trained
    (shares its weights; nothing is copied)."""
    from ..backends.jointnet import DeepFloydJointNetPipeline, JointNetPipeline

    if components.vae is None:
        return DeepFloydJointNetPipeline(tokenizer=components.tokenizer, text_encoder=components.text_encoder,
                                         scheduler=components.sample_scheduler, jointnet=pair)
    return JointNetPipeline(vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
                            scheduler=components.sample_scheduler, jointnet=pair)


def build_pair(stage: str, base: Path):
    """The JointNetPair a stage trains (float32, on the CPU)."""
    from diffusers import UNet2DConditionModel

    from ..backends.jointnet import JointNetModel, JointNetPair, is_checkpoint_dir, load_pair

    base = Path(base)
    if stage == "branch":
        raise ValueError("the branch stage builds its model with training.branch.build_new_branch")
    if stage == "1":
        if not is_stable_diffusion_dir(base):
            hint = " (that is a JointNet checkpoint: use --stage 2 or --stage inpaint)" if is_checkpoint_dir(base) else ""
            raise UserInputError(f"stage 1 needs a diffusers Stable Diffusion folder with unet/ as --base; {base} is not one{hint}")
        try:
            unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load {base / 'unet'} ({' '.join(str(exc).split())[:200]}); "
                             "check the Stable Diffusion folder") from None
        return JointNetPair.from_unet(_placed(unet, "cpu", torch.float32))
    if not is_checkpoint_dir(base):
        raise UserInputError(f"--stage {stage} continues a JointNet checkpoint (unet/ and jointnet/); {base} is not one"
                             + (" (it is a Stable Diffusion folder: start with --stage 1)" if is_stable_diffusion_dir(base) else ""))
    pair = _placed(load_pair(base), "cpu", torch.float32)  # trained weights stay float32
    if stage == "inpaint" and not pair.has_masked_latent_input:
        # from_unet keeps every trained weight (exchange layers included) and adds a zero
        # masked-latent conv, so the new pair predicts exactly what the old one did.
        pair = JointNetPair(*(
            JointNetModel.from_unet(branch, masked_latent_input=True,
                                    joint_in_channels=branch.config.joint_in_channels)
            for branch in (pair.unet, pair.jointnet)
        ))
    return pair


def set_trainable(pair, train_rgb: bool) -> list[torch.nn.Parameter]:
    """Mark what trains; returns the trainable parameters in a fixed order.

    The paper locks the RGB branch: its UNet layers keep the pretrained weights bit for bit. The
    exchange layers (``jointnet_*``) of BOTH branches train, the RGB branch's included: they are
    new, zero-initialised connections, not part of the pretrained network, and the ones in the
    RGB branch carry RGB features to the modality branch, which is how the new modality learns to
    agree with the image. The modality branch trains entirely.
    """
    pair.requires_grad_(False)
    pair.jointnet.requires_grad_(True)
    if train_rgb:
        pair.unet.requires_grad_(True)
    else:
        for module in pair.unet.exchange_modules():
            module.requires_grad_(True)
    return [p for p in pair.parameters() if p.requires_grad]


def frozen_rgb_names(pair) -> list[str]:
    """State-dict names of the RGB branch's pretrained (non-exchange) parameters."""
    return [name for name, _ in pair.unet.named_parameters() if not name.startswith("jointnet_")]


@torch.no_grad()
def encode_text(pipeline, captions: list[str]) -> torch.Tensor:
    """Caption embeddings exactly as ``JointNetPipeline`` computes them at inference."""
    cond, _ = pipeline.encode_prompt(list(captions), do_cfg=False)
    return cond


@torch.no_grad()
def encode_images(components: Components, pixels: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> scaled latents, the whole batch in one VAE call (IF: the pixels themselves)."""
    vae = components.vae
    if vae is None:
        return pixels.float()
    latents = vae.encode(pixels.to(vae.dtype)).latent_dist.sample()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((latents - shift) * vae.config.scaling_factor).float()
