"""Setting up a training run: the accelerator, the networks (frozen VAE and text encoder, the pair
with what trains marked), the optimiser, the learning-rate schedule and the EMA copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..errors import UserInputError
from ..progress import ProgressCallback
from .config import TrainConfig
from .branch import build_new_branch, trainable_new_parts
from .models import (build_pair, components_folder, latent_channels, load_components, make_pipeline,
                     set_trainable)


@dataclass
class Session:
    """What every step of a run uses."""

    cfg: TrainConfig
    accelerator: Any
    spec: Any  # the modality plugin
    trackers: list
    say: Optional[ProgressCallback]  # the progress callback on the main process, None elsewhere
    device: torch.device
    components: Any
    pipeline: Any
    trainable: list
    model: Any  # the prepared pair
    optimizer: Any
    lr_scheduler: Any
    ema: Any = None


def start_session(cfg: TrainConfig, progress: Optional[ProgressCallback]) -> Session:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler

    from ..registry import get_registry

    spec = get_registry().modality(cfg.modality)
    trackers = _trackers(cfg.report_to)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=str(cfg.out), logging_dir=str(cfg.out / "logs")),
    )
    device = accelerator.device
    if device.type == "cuda":  # TF32 matmuls: the usual diffusion-training speed-up on Ampere and newer
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_seed(cfg.seed)

    # Networks: frozen VAE + text encoder, and the pair, with what trains marked.
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    components = load_components(components_folder(cfg.base, cfg.components), device, weight_dtype)
    pair = build_new_branch(cfg.base, cfg.modality) if cfg.stage == "branch" else build_pair(cfg.stage, cfg.base)
    _check_latent_channels(components, pair)
    # One pipeline around the pair: it encodes captions in training exactly as at inference, and
    # renders the validation samples.
    pipeline = make_pipeline(components, pair)
    trainable = trainable_new_parts(pair) if cfg.stage == "branch" else set_trainable(pair, cfg.training_rgb)
    if cfg.gradient_checkpointing:
        pair.unet.enable_gradient_checkpointing()
        pair.jointnet.enable_gradient_checkpointing()
    # The pair stays float32 under mixed precision: autocast computes in half precision, and the
    # locked RGB weights must leave this run bit-identical.
    pair.to(device).train()

    # Optimisation. Accelerate steps a prepared scheduler once per process, hence the factor.
    optimizer = _make_optimizer(cfg, trainable, device)
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer,
                                 num_warmup_steps=cfg.warmup_steps * accelerator.num_processes)
    model, optimizer, lr_scheduler = accelerator.prepare(pair, optimizer, lr_scheduler)
    ema = None
    if cfg.ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(trainable, decay=cfg.ema_decay)
        ema.to(device)
    say = progress if accelerator.is_main_process else None  # one progress bar, not one per GPU
    return Session(cfg, accelerator, spec, trackers, say, device, components, pipeline, trainable, model,
                   optimizer, lr_scheduler, ema)


def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        if report_to == "tensorboard":
            raise UserInputError("--report-to tensorboard needs TensorBoard: pip install tensorboard")
        return []
    return ["tensorboard"]


def scalar_config(cfg: TrainConfig) -> dict:
    return {k: v for k, v in cfg.to_json().items() if isinstance(v, (int, float, str, bool))}


def _check_latent_channels(components, pair) -> None:
    if latent_channels(components) != pair.in_channels:
        raise UserInputError(f"the base in {components.folder} makes {latent_channels(components)}-channel "
                             f"latents but the JointNet takes {pair.in_channels}; use the base model's own components")


def _make_optimizer(cfg: TrainConfig, params: list, device: torch.device):
    if not params:
        raise UserInputError("nothing to train: every parameter is frozen")
    kwargs = dict(lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay, eps=1e-8)
    if cfg.optimizer in ("auto", "adamw8bit") and device.type == "cuda":
        try:
            import bitsandbytes as bnb
        except ImportError:
            bnb = None
        if bnb is not None:
            return bnb.optim.AdamW8bit(params, **kwargs)
    if cfg.optimizer == "adamw8bit":
        raise UserInputError("--optimizer adamw8bit needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); "
                             "or use --optimizer adamw")
    # The fused kernel is the fastest AdamW on CUDA; elsewhere torch's default implementation.
    return torch.optim.AdamW(params, fused=True if device.type == "cuda" else None, **kwargs)
