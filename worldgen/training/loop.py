"""The training loop, top to bottom: teach a JointNet a new modality.

The method (JointNet, sec. 3.4 and 4.1): the base UNet is copied into a modality branch, the two
branches are joined by zero-initialised exchange layers, the RGB branch's own layers stay locked
and the sum of both branches' noise-prediction MSEs is minimised, with text dropout, a noise
offset and a warmed-up constant learning rate. Stage 2 unlocks everything; the inpaint stage adds
the masked-latent input and draws random masks. Accelerate runs the same code on one CPU, one GPU
or many (``accelerate launch -m worldgen.training ...``).

Determinism: every random draw of a step (text dropout, masks, VAE sampling, noise, timesteps)
comes from the global RNGs that checkpoints save, the data order is a function of the position in
the sample stream, and validation sampling runs on forked RNGs, so a resumed run repeats an
uninterrupted one exactly (on the same hardware and settings).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import UserInputError
from ..progress import ProgressCallback, report
from .branch import build_new_branch, trainable_new_parts
from .checkpoints import latest_checkpoint, list_checkpoints, load_checkpoint, read_state, save_checkpoint
from .config import TrainConfig
from .export import export_model
from .masks import masked_latents, random_masks
from .models import (build_pair, components_folder, encode_images, encode_text, latent_channels, load_components,
                     make_pipeline, set_trainable)

LOG_NAME = "train_log.jsonl"
# Settings a resumed run must share with the run it continues (others, like --steps, may change).
RESUME_MUST_MATCH = ("modality", "stage", "base", "train_rgb", "resolution", "batch_size", "gradient_accumulation")


@dataclass
class TrainResult:
    start_step: int  # where this run began (0, or the checkpoint it resumed)
    step: int  # where it ended
    final_loss: Optional[float]
    samples_per_second: Optional[float]  # over this run's training steps, all processes together
    export_dir: Path
    samples: list[Path] = field(default_factory=list)
    resumed_from: Optional[Path] = None


def train(config: TrainConfig, progress: Optional[ProgressCallback] = None) -> TrainResult:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler

    from ..registry import get_registry

    cfg = config.resolved()
    spec = get_registry().modality(cfg.modality)
    trackers = _trackers(cfg.report_to)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=str(cfg.out), logging_dir=str(cfg.out / "logs")),
    )
    say = progress if accelerator.is_main_process else None  # one progress bar, not one per GPU
    device = accelerator.device
    if device.type == "cuda":  # TF32 matmuls: the usual diffusion-training speed-up on Ampere and newer
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_seed(cfg.seed)

    # 1. Networks: frozen VAE + text encoder, and the pair, with what trains marked.
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

    # 2. Optimisation. Accelerate steps a prepared scheduler once per process, hence the factor.
    optimizer = _make_optimizer(cfg, trainable, device)
    lr_scheduler = get_scheduler("constant_with_warmup", optimizer,
                                 num_warmup_steps=cfg.warmup_steps * accelerator.num_processes)
    model, optimizer, lr_scheduler = accelerator.prepare(pair, optimizer, lr_scheduler)
    ema = None
    if cfg.ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(trainable, decay=cfg.ema_decay)
        ema.to(device)

    # 3. Where to start: fresh, or exactly where the newest checkpoint stopped.
    start_step, resumed_from, resumed_samples = _resume_or_start(cfg, accelerator, ema)
    samples_per_step = cfg.batch_size * cfg.gradient_accumulation * accelerator.num_processes
    # The data position is counted in samples, not steps: a run resumed on another number of GPUs
    # has another batch per step, and must still continue the stream exactly where it stopped.
    start_samples = resumed_samples if resumed_samples is not None else start_step * samples_per_step
    if accelerator.is_main_process and resumed_from is None:
        cfg.out.mkdir(parents=True, exist_ok=True)
    if trackers:
        accelerator.init_trackers("worldgen-train", config=_scalar_config(cfg))

    # 4. Data, positioned after the samples already consumed.
    loader = _make_loader(cfg, spec, accelerator, start_samples, say)
    batches = iter(loader)

    # 5. The loop. Throughput is wall-clock per logging window (data loading included,
    # checkpoints and validation samples excluded); the loss is summed on the device so that
    # only logging steps wait for the GPU.
    step = start_step
    window_loss, window_batches, window_steps = torch.zeros((), device=device), 0, 0
    window_start, paused = time.perf_counter(), 0.0
    last_good = start_step  # the last step whose state is known finite (nothing later is ever saved)
    total_time, total_steps = 0.0, 0
    last_loss: Optional[float] = None
    samples: list[Path] = []
    detail = ""
    report(say, "train", step, cfg.steps, "resumed" if resumed_from else "")
    while step < cfg.steps:
        for _ in range(cfg.gradient_accumulation):
            batch = next(batches)
            with accelerator.accumulate(model):
                loss = _training_loss(cfg, model, pipeline, components, batch, device)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            window_loss += loss.detach()
            window_batches += 1
        step += 1
        window_steps += 1
        if ema is not None:
            ema.step(trainable)

        checkpoint_now = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps
        validate_now = (cfg.validation_every and step % cfg.validation_every == 0) or step == cfg.steps
        if step % cfg.log_every == 0 or checkpoint_now or validate_now:
            # A NaN/inf loss has already poisoned the weights: stop before anything is saved.
            _stop_if_not_finite(accelerator, window_loss, step, last_good, cfg)
            last_good = step
        if step % cfg.log_every == 0 or step == cfg.steps:
            last_loss = accelerator.reduce(window_loss / window_batches, reduction="mean").item()
            elapsed = time.perf_counter() - window_start - paused
            rate = samples_per_step * window_steps / elapsed if elapsed > 0 else None
            total_time, total_steps = total_time + elapsed, total_steps + window_steps
            lr = lr_scheduler.get_last_lr()[0]
            detail = f"loss {last_loss:.4f} lr {lr:.2e}" + (f" {rate:.1f} samples/s" if rate else "")
            record = {"step": step, "loss": last_loss, "lr": lr, "samples_per_s": rate}
            if device.type == "cuda":
                record["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            if trackers:
                accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step" and v is not None}, step=step)
            if accelerator.is_main_process:
                with open(cfg.out / LOG_NAME, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            window_loss, window_batches, window_steps = torch.zeros((), device=device), 0, 0
            window_start, paused = time.perf_counter(), 0.0
        report(say, "train", step, cfg.steps, detail)

        pause_start = time.perf_counter()
        if checkpoint_now:
            state = {"samples_seen": start_samples + (step - start_step) * samples_per_step, "config": cfg.to_json(),
                     "world_size": accelerator.num_processes, "num_workers": cfg.num_workers}
            save_checkpoint(accelerator, cfg.out, step, state, ema=ema, keep=cfg.keep_checkpoints)
        if validate_now:
            path = _validate(cfg, spec, accelerator, pipeline, ema, trainable, step)
            if path is not None:
                samples.append(path)
        paused += time.perf_counter() - pause_start

    # 6. The model, in the official layout (with EMA weights when EMA was on).
    export_dir = cfg.out / "model"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with _ema_weights(ema, trainable):
            export_model(accelerator.unwrap_model(model), export_dir, cfg, step)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    total_rate = samples_per_step * total_steps / total_time if total_time > 0 else None
    return TrainResult(start_step, step, last_loss, total_rate, export_dir, samples, resumed_from)


# ---- one step's loss ------------------------------------------------------------------------------
def _training_loss(cfg: TrainConfig, model, pipeline, components, batch: dict, device) -> torch.Tensor:
    """Sum of both branches' MSEs (paper, eq. 1) for one batch, drawing all randomness here."""
    captions = list(batch["captions"])
    dropped = torch.rand(len(captions)) < cfg.text_dropout
    captions = ["" if drop else caption for drop, caption in zip(dropped.tolist(), captions)]
    context = encode_text(pipeline, captions)

    latents_rgb = encode_images(components, batch["pixel_values"].to(device, non_blocking=True))
    latents_mod = encode_images(components, batch["modality_values"].to(device, non_blocking=True))
    masks = {}
    if cfg.stage == "inpaint":
        n, _, h, w = latents_rgb.shape
        mask_rgb, mask_mod, _ = random_masks(n, h, w)
        mask_rgb, mask_mod = mask_rgb.to(device), mask_mod.to(device)
        masks = dict(mask_rgb=mask_rgb, masked_rgb=masked_latents(latents_rgb, mask_rgb),
                     mask_joint=mask_mod, masked_joint=masked_latents(latents_mod, mask_mod))
    return joint_loss(model, components.noise_scheduler, latents_rgb, latents_mod, context, cfg.noise_offset, **masks)


def joint_loss(model, noise_scheduler, latents_rgb: torch.Tensor, latents_mod: torch.Tensor, context: torch.Tensor,
               noise_offset: float = 0.0, noise: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
               timesteps: Optional[torch.Tensor] = None, **masks) -> torch.Tensor:
    """mse(eps_rgb) + mse(eps_modality) at one shared timestep per example.

    ``noise``/``timesteps`` default to fresh draws (with the noise offset: a per-channel constant
    that lets the model learn overall brightness shifts); passing them evaluates a fixed batch.
    """
    n = latents_rgb.shape[0]
    if noise is None:
        noise = tuple(torch.randn_like(x) for x in (latents_rgb, latents_mod))
        if noise_offset:
            noise = tuple(e + noise_offset * torch.randn(n, e.shape[1], 1, 1, device=e.device) for e in noise)
    if timesteps is None:
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (n,), device=latents_rgb.device)
    noisy = [noise_scheduler.add_noise(x, e, timesteps) for x, e in zip((latents_rgb, latents_mod), noise)]
    pred_rgb, pred_mod = model(noisy[0], noisy[1], timesteps, context, **masks)
    if noise_scheduler.config.prediction_type == "v_prediction":
        targets = [noise_scheduler.get_velocity(x, e, timesteps) for x, e in zip((latents_rgb, latents_mod), noise)]
    else:
        targets = list(noise)
    channels = latents_rgb.shape[1]  # learned-variance UNets (IF) also output a variance half
    return sum(F.mse_loss(pred[:, :channels].float(), target.float())
               for pred, target in zip((pred_rgb, pred_mod), targets))


def _stop_if_not_finite(accelerator, window_loss: torch.Tensor, step: int, last_good: int, cfg: TrainConfig) -> None:
    """Raise, on every process at once, if any process saw a NaN/inf loss since ``last_good``."""
    bad = accelerator.reduce((~torch.isfinite(window_loss)).float(), reduction="sum").item()
    if bad:
        saved = f"the last checkpoint is from step {last_good} or earlier" if last_good else "nothing was saved"
        raise UserInputError(
            f"the training loss became NaN or infinite between steps {last_good + 1} and {step}; {saved}. "
            f"Lower --lr (now {cfg.lr:g}), use --mixed-precision bf16 rather than fp16, or check the data"
        )


# ---- pieces of set-up ---------------------------------------------------------------------------
def _trackers(report_to: str) -> list[str]:
    if report_to == "none":
        return []
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        if report_to == "tensorboard":
            raise UserInputError("--report-to tensorboard needs TensorBoard: pip install tensorboard")
        return []
    return ["tensorboard"]


def _scalar_config(cfg: TrainConfig) -> dict:
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


def _resume_or_start(cfg: TrainConfig, accelerator, ema) -> tuple[int, Optional[Path], Optional[int]]:
    """(step, checkpoint resumed from, samples consumed before it); (0, None, None) for a fresh run."""
    existing = list_checkpoints(cfg.out)
    if existing and not cfg.resume:
        raise UserInputError(f"{cfg.out} already holds training checkpoints; pass --resume to continue "
                             "or choose a new --out")
    if not (cfg.resume and existing):
        return 0, None, None
    path = latest_checkpoint(cfg.out)
    saved = read_state(path).get("config", {})
    now = cfg.to_json()
    for key in RESUME_MUST_MATCH:
        if key in saved and saved[key] != now[key]:
            raise UserInputError(f"--resume: {path.name} was trained with {key}={saved[key]!r}, not {now[key]!r}; "
                                 f"use the same {key} or a new --out")
    state = load_checkpoint(accelerator, path, ema)
    seen = state.get("samples_seen")
    return int(state["step"]), path, int(seen) if seen is not None else None


def _make_loader(cfg: TrainConfig, spec, accelerator, start_samples: int, say):
    from functools import partial

    from ..registry import get_registry
    from .data import (EstimateCache, ExampleReader, InfiniteShardedSampler, JointImageDataset,
                       StreamingJointDataset, iter_records, make_loader, precompute_estimates, scan_records)

    registry = get_registry()
    names = tuple(registry.names("worldgen.modalities"))
    plugin = next(p for p in registry.plugins("worldgen.modalities") if p.name == spec.name)
    options = json.dumps(cfg.estimator_options, sort_keys=True, default=str)
    cache = EstimateCache(cfg.cache_dir, spec, f"{plugin.distribution}=={plugin.version}:{options}", cfg.estimator_options)
    reader = ExampleReader(spec, cfg.resolution, cfg.min_crop, cache)
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.streaming:
        records = partial(iter_records, cfg.data, spec.name, names)
        dataset = StreamingJointDataset(records, reader, cfg.seed, cfg.batch_size, cfg.shuffle_buffer,
                                        rank, world, start_batches=start_samples // (cfg.batch_size * world))
        return make_loader(dataset, cfg.batch_size, cfg.num_workers, cfg.seed)
    records = scan_records(cfg.data, spec.name, names)
    if cfg.precompute:
        # Each process estimates its share once, up front, instead of stalling the first epoch.
        precompute_estimates(records, reader, rank, world, say)
        accelerator.wait_for_everyone()
    sampler = InfiniteShardedSampler(len(records), cfg.seed, start=start_samples, rank=rank, world=world)
    return make_loader(JointImageDataset(records, reader, cfg.seed), cfg.batch_size, cfg.num_workers, cfg.seed,
                       sampler=sampler)


class _ema_weights:
    """Swap the EMA weights in for the duration of a block (no-op without EMA)."""

    def __init__(self, ema, params):
        self.ema, self.params = ema, params

    def __enter__(self):
        if self.ema is not None:
            self.ema.store(self.params)
            self.ema.copy_to(self.params)

    def __exit__(self, *exc):
        if self.ema is not None:
            self.ema.restore(self.params)
        return False


def _validate(cfg, spec, accelerator, pipeline, ema, trainable, step: int) -> Optional[Path]:
    """Render the fixed validation prompt with a fixed seed; save it and log it (main process)."""
    from .samples import render_sample, save_sample

    path = None
    if accelerator.is_main_process:
        devices = [accelerator.device] if accelerator.device.type == "cuda" else []
        # Forked RNGs: sampling must not shift the training stream, or resuming would diverge.
        with torch.random.fork_rng(devices=devices), _ema_weights(ema, trainable):
            pipeline.jointnet.eval()
            try:
                rgb, modality = render_sample(pipeline, cfg)
            finally:
                pipeline.jointnet.train()
        path = save_sample(cfg.out / "samples" / f"step-{step:08d}.png", rgb, modality, spec)
        if accelerator.trackers:
            _log_image(accelerator, path, step)
    accelerator.wait_for_everyone()
    return path


def _log_image(accelerator, path: Path, step: int) -> None:
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        array = np.asarray(img.convert("RGB"))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation", array, step, dataformats="HWC")
