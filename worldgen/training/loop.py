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
from .checkpoints import latest_checkpoint, list_checkpoints, load_checkpoint, read_state, save_checkpoint
from .config import TrainConfig
from .export import export_model
from .masks import masked_latents, random_masks
from .models import encode_images, encode_text
from .session import scalar_config, start_session

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
    cfg = config.resolved()
    run = start_session(cfg, progress)
    accelerator = run.accelerator

    # Where to start: fresh, or exactly where the newest checkpoint stopped.
    start_step, resumed_from, resumed_samples = _resume_or_start(cfg, accelerator, run.ema)
    samples_per_step = cfg.batch_size * cfg.gradient_accumulation * accelerator.num_processes
    # The data position is counted in samples, not steps: a run resumed on another number of GPUs
    # has another batch per step, and must still continue the stream exactly where it stopped.
    start_samples = resumed_samples if resumed_samples is not None else start_step * samples_per_step
    if accelerator.is_main_process and resumed_from is None:
        cfg.out.mkdir(parents=True, exist_ok=True)
    if run.trackers:
        accelerator.init_trackers("worldgen-train", config=scalar_config(cfg))
    # Data, positioned after the samples already consumed.
    batches = iter(_make_loader(cfg, run.spec, accelerator, start_samples, run.say))

    window = _LossWindow(run, samples_per_step, start_step)
    step, samples = start_step, []
    report(run.say, "train", step, cfg.steps, "resumed" if resumed_from else "")
    while step < cfg.steps:
        window.add(*_train_step(run, batches))
        step += 1
        if run.ema is not None:
            run.ema.step(run.trainable)
        checkpoint_now = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps
        validate_now = (cfg.validation_every and step % cfg.validation_every == 0) or step == cfg.steps
        if step % cfg.log_every == 0 or checkpoint_now or validate_now:
            # A NaN/inf loss has already poisoned the weights: stop before anything is saved.
            _stop_if_not_finite(accelerator, window.loss, step, window.last_good, cfg)
            window.last_good = step
        if step % cfg.log_every == 0 or step == cfg.steps:
            window.write(step)
        report(run.say, "train", step, cfg.steps, window.detail)

        pause_start = time.perf_counter()
        if checkpoint_now:
            state = {"samples_seen": start_samples + (step - start_step) * samples_per_step, "config": cfg.to_json(),
                     "world_size": accelerator.num_processes, "num_workers": cfg.num_workers}
            save_checkpoint(accelerator, cfg.out, step, state, ema=run.ema, keep=cfg.keep_checkpoints)
        if validate_now:
            path = _validate(cfg, run.spec, accelerator, run.pipeline, run.ema, run.trainable, step)
            if path is not None:
                samples.append(path)
        window.paused += time.perf_counter() - pause_start
    return _finish(run, start_step, step, window, samples, resumed_from)


def _train_step(run, batches) -> tuple[torch.Tensor, int]:
    """One optimiser step over ``gradient_accumulation`` batches: (the summed loss, batches used)."""
    cfg, accelerator = run.cfg, run.accelerator
    total = torch.zeros((), device=run.device)
    for _ in range(cfg.gradient_accumulation):
        batch = next(batches)
        with accelerator.accumulate(run.model):
            loss = _training_loss(cfg, run.model, run.pipeline, run.components, batch, run.device)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(run.trainable, cfg.max_grad_norm)
            run.optimizer.step()
            run.lr_scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
        total += loss.detach()
    return total, cfg.gradient_accumulation


class _LossWindow:
    """The loss and throughput of one logging window. Throughput is wall-clock per window (data
    loading included, checkpoints and validation samples excluded, see ``paused``); the loss is
    summed on the device so that only logging steps wait for the GPU."""

    def __init__(self, run, samples_per_step: int, start_step: int) -> None:
        self.run, self.samples_per_step = run, samples_per_step
        self.last_good = start_step  # the last step whose state is known finite (nothing later is ever saved)
        self.total_time, self.total_steps = 0.0, 0
        self.last_loss: Optional[float] = None
        self.detail = ""
        self._reset()

    def _reset(self) -> None:
        self.loss, self.batches, self.steps = torch.zeros((), device=self.run.device), 0, 0
        self.start, self.paused = time.perf_counter(), 0.0

    def add(self, loss: torch.Tensor, batches: int) -> None:
        self.loss += loss
        self.batches += batches
        self.steps += 1

    def write(self, step: int) -> None:
        """Log the window (train_log.jsonl on the main process, the trackers) and start the next."""
        run, accelerator = self.run, self.run.accelerator
        self.last_loss = accelerator.reduce(self.loss / self.batches, reduction="mean").item()
        elapsed = time.perf_counter() - self.start - self.paused
        rate = self.samples_per_step * self.steps / elapsed if elapsed > 0 else None
        self.total_time, self.total_steps = self.total_time + elapsed, self.total_steps + self.steps
        lr = run.lr_scheduler.get_last_lr()[0]
        self.detail = f"loss {self.last_loss:.4f} lr {lr:.2e}" + (f" {rate:.1f} samples/s" if rate else "")
        record = {"step": step, "loss": self.last_loss, "lr": lr, "samples_per_s": rate}
        if run.device.type == "cuda":
            record["max_memory_gib"] = torch.cuda.max_memory_allocated(run.device) / 2**30
        if run.trackers:
            accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step" and v is not None}, step=step)
        if accelerator.is_main_process:
            with open(run.cfg.out / LOG_NAME, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        self._reset()


def _finish(run, start_step: int, step: int, window: _LossWindow, samples: list, resumed_from) -> TrainResult:
    """Export the model in the official layout (with EMA weights when EMA was on) and sum up the run."""
    accelerator = run.accelerator
    export_dir = run.cfg.out / "model"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with _ema_weights(run.ema, run.trainable):
            export_model(accelerator.unwrap_model(run.model), export_dir, run.cfg, step)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    total_rate = (window.samples_per_step * window.total_steps / window.total_time
                  if window.total_time > 0 else None)
    return TrainResult(start_step, step, window.last_loss, total_rate, export_dir, samples, resumed_from)


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
    from .data import (EstimateCache, ExampleReader, InfiniteShardedSampler, JointImageDataset, StreamingJointDataset,
                       make_loader, precompute_estimates)
    from .records import iter_records, scan_records

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
