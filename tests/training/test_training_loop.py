"""The training loop on tiny random models (CPU, seconds): what the method promises, checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from worldgen.errors import UserInputError
from worldgen.training.config import TrainConfig
from worldgen.training.loop import joint_loss, train

SIZE = 32  # training pixels: 4x4 latents with the tiny 8x-downsampling VAE


def config(base: Path, data: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(modality="depth", base=base, data=data, out=out, steps=4, resolution=SIZE, batch_size=2,
                    warmup_steps=0, num_workers=0, checkpoint_every=0, validation_every=0, validation_steps=2,
                    log_every=1, report_to="none", lr=1e-3)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture
def depth_data(tmp_path, make_images, make_depth_files) -> Path:
    folder = tmp_path / "data"
    make_depth_files(make_images(folder, count=4, size=(40, 48)))
    return folder


def branch_state(folder: Path) -> dict:
    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


# ---- stage 1 ------------------------------------------------------------------------------------
def test_stage1_keeps_the_rgb_branch_bit_identical(tiny_checkpoint, depth_data, tmp_path):
    base = tiny_checkpoint / "base"
    result = train(config(base, depth_data, tmp_path / "run", steps=3))
    before = load_file(str(base / "unet" / "diffusion_pytorch_model.safetensors"))
    rgb = branch_state(result.export_dir / "unet")
    modality = branch_state(result.export_dir / "jointnet")

    pretrained = [k for k in rgb if not k.startswith("jointnet_")]
    assert pretrained and set(pretrained) == set(before)
    assert all(torch.equal(rgb[k], before[k]) for k in pretrained)  # locked: bit for bit
    # The new connections are trained in both branches (they start at exactly zero) ...
    exchange = [k for k in rgb if k.startswith("jointnet_")]
    assert all(rgb[k].abs().max() > 0 for k in exchange if k.endswith("weight"))
    assert all(modality[k].abs().max() > 0 for k in modality if k.startswith("jointnet_") and k.endswith("weight"))
    # ... and so is the modality branch's copy of the UNet.
    changed = [k for k in pretrained if not torch.equal(modality[k], before[k])]
    assert len(changed) > 0.9 * len(pretrained)


def test_loss_falls_on_a_fixed_batch(tiny_checkpoint, tmp_path, make_images, make_depth_files):
    from worldgen.backends.jointnet import load_pair
    from worldgen.training.models import build_pair, encode_images, encode_text, load_components, make_pipeline

    data = tmp_path / "data"
    make_depth_files(make_images(data, count=2, size=(SIZE, SIZE)))
    base = tiny_checkpoint / "base"
    cfg = config(base, data, tmp_path / "run", steps=50, min_crop=1.0, text_dropout=0.0, log_every=10)

    # The fixed batch: both examples, with fixed noise and timesteps spread over the schedule.
    from worldgen.registry import get_registry
    from worldgen.training.data import EstimateCache, ExampleReader, collate
    from worldgen.training.records import scan_records

    spec = get_registry().modality("depth")
    reader = ExampleReader(spec, SIZE, 1.0, EstimateCache(tmp_path / "cache", spec, "t"))
    batch = collate([reader(r, np.random.default_rng(0)) for r in scan_records(data, "depth")])
    components = load_components(base, torch.device("cpu"))
    torch.manual_seed(123)
    latents = [encode_images(components, batch[k]) for k in ("pixel_values", "modality_values")]
    draws = [(tuple(torch.randn_like(x) for x in latents), torch.tensor([t, t]))
             for t in (100, 300, 500, 700, 900)]

    @torch.no_grad()
    def fixed_loss(pair) -> float:
        context = encode_text(make_pipeline(components, pair), batch["captions"])
        return float(np.mean([joint_loss(pair, components.noise_scheduler, *latents, context, noise=noise,
                                         timesteps=t).item() for noise, t in draws]))

    before = fixed_loss(build_pair("1", base).eval())
    result = train(cfg)
    after = fixed_loss(load_pair(result.export_dir).eval())
    assert np.isfinite(before) and after < 0.8 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50]
    assert all(r["samples_per_s"] > 0 for r in log)


# ---- resuming ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage, ema, streaming", [("1", True, False), ("inpaint", False, False), ("1", False, True)])
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_checkpoint, depth_data, tmp_path, stage, ema,
                                                            streaming):
    base = tiny_checkpoint / "base" if stage == "1" else tiny_checkpoint
    common = dict(stage=stage, ema=ema, ema_decay=0.9, text_dropout=0.5, min_crop=0.5, streaming=streaming,
                  shuffle_buffer=3)
    straight = train(config(base, depth_data, tmp_path / "straight", steps=6, checkpoint_every=3, **common))

    first = train(config(base, depth_data, tmp_path / "resumed", steps=3, **common))
    second = train(config(base, depth_data, tmp_path / "resumed", steps=6, resume=True, **common))
    assert first.step == 3 and second.start_step == 3 and second.step == 6
    assert second.resumed_from.name == "step-00000003"

    for branch in ("unet", "jointnet"):
        a = branch_state(straight.export_dir / branch)
        b = branch_state(second.export_dir / branch)
        assert a.keys() == b.keys()
        mismatched = [k for k in a if not torch.equal(a[k], b[k])]
        assert not mismatched, mismatched[:5]
    # The logged losses of steps 4-6 agree too (same batches, same noise).
    def losses(run):
        return [json.loads(l)["loss"] for l in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
    assert losses("resumed")[3:] == losses("straight")[3:]


def test_output_with_checkpoints_needs_resume(tiny_checkpoint, depth_data, tmp_path):
    out = tmp_path / "run"
    train(config(tiny_checkpoint / "base", depth_data, out, steps=1))
    with pytest.raises(UserInputError, match="--resume"):
        train(config(tiny_checkpoint / "base", depth_data, out, steps=2))
    with pytest.raises(UserInputError, match="modality"):
        train(config(tiny_checkpoint / "base", depth_data, out, steps=2, resume=True, modality="normal"))


# ---- the exported model --------------------------------------------------------------------------
def test_export_loads_in_the_pipeline_and_generates(tiny_checkpoint, depth_data, tmp_path):
    from worldgen.backends.jointnet import JointNetPipeline, checkpoint_modality

    result = train(config(tiny_checkpoint / "base", depth_data, tmp_path / "run", steps=2))
    export = result.export_dir
    for branch in ("unet", "jointnet"):
        cfg = json.loads((export / branch / "config.json").read_text())
        assert cfg["_class_name"] == "JointNetModel" and cfg["has_masked_latent_input"] is False
    assert checkpoint_modality(export) == "depth"
    assert result.samples and result.samples[-1].is_file()  # a validation sample at the last step

    pipe = JointNetPipeline.from_pretrained(export)  # finds export/base by itself
    out = pipe("a test picture", height=SIZE, width=SIZE, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, SIZE, SIZE, 3) and out.modality.shape == (1, SIZE, SIZE, 3)
    assert np.isfinite(out.images).all() and np.isfinite(out.modality).all()


def test_stage2_continues_an_export_and_trains_everything(tiny_checkpoint, depth_data, tmp_path):
    first = train(config(tiny_checkpoint / "base", depth_data, tmp_path / "one", steps=1))
    second = train(config(first.export_dir, depth_data, tmp_path / "two", stage="2", steps=2))
    before, after = branch_state(first.export_dir / "unet"), branch_state(second.export_dir / "unet")
    pretrained = [k for k in before if not k.startswith("jointnet_")]
    assert sum(not torch.equal(before[k], after[k]) for k in pretrained) > 0.9 * len(pretrained)


def test_inpaint_stage_adds_masked_latent_input_and_trains(tiny_checkpoint, depth_data, tmp_path):
    from worldgen.backends.jointnet import JointNetPipeline, load_pair

    start = load_pair(tiny_checkpoint)
    assert not start.has_masked_latent_input
    result = train(config(tiny_checkpoint, depth_data, tmp_path / "run", stage="inpaint", steps=3))
    for branch in ("unet", "jointnet"):
        assert json.loads((result.export_dir / branch / "config.json").read_text())["has_masked_latent_input"] is True
        state = branch_state(result.export_dir / branch)
        # Added at zero, moved by training: the new input is really trained.
        assert state["jointnet_masked_latent_conv.weight"].shape[1] == 10
        assert state["jointnet_masked_latent_conv.weight"].abs().max() > 0
    pipe = JointNetPipeline.from_pretrained(result.export_dir)
    assert pipe.jointnet.has_masked_latent_input
    out = pipe("a test picture", height=SIZE, width=SIZE, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert np.isfinite(out.images).all() and np.isfinite(out.modality).all()


def test_stage_and_base_must_fit(tiny_checkpoint, depth_data, tmp_path):
    with pytest.raises(UserInputError, match="--stage 2"):
        train(config(tiny_checkpoint, depth_data, tmp_path / "a", stage="1", components=tiny_checkpoint / "base"))
    with pytest.raises(UserInputError, match="--stage 1"):
        train(config(tiny_checkpoint / "base", depth_data, tmp_path / "b", stage="2"))


def test_checkpoints_are_complete_pruned_and_recorded(tiny_checkpoint, depth_data, tmp_path):
    from worldgen.training.checkpoints import list_checkpoints, read_state

    out = tmp_path / "run"
    train(config(tiny_checkpoint / "base", depth_data, out, steps=3, checkpoint_every=1, keep_checkpoints=2))
    kept = list_checkpoints(out)
    assert [step for step, _ in kept] == [2, 3]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no half-written leftovers
    state = read_state(kept[-1][1])
    assert state["step"] == 3 and state["samples_seen"] == 6 and state["config"]["modality"] == "depth"
    names = {p.name for p in kept[-1][1].iterdir()}
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= names


def test_tensorboard_gets_losses_throughput_and_samples(tiny_checkpoint, depth_data, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs the 'train' extra: pip install tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(config(tiny_checkpoint / "base", depth_data, out, steps=2, report_to="tensorboard"))
    events = list((out / "logs").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/samples_per_s"} <= scalars
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    assert "validation" in acc.Tags()["images"]


def test_gradient_checkpointing_changes_memory_not_results(tiny_checkpoint, depth_data, tmp_path):
    from worldgen.training.models import build_pair

    # It is really on: in the backward pass each block's forward runs again (recomputation).
    pair = build_pair("1", tiny_checkpoint / "base")
    pair.jointnet.enable_gradient_checkpointing()
    calls = []
    # A pre-hook: recomputation stops early, once it has what backward needs, so it may never return.
    pair.jointnet.down_blocks[0].resnets[0].register_forward_pre_hook(lambda *_: calls.append(1))
    x = torch.randn(1, 4, 4, 4)
    eps_rgb, eps_mod = pair(x, x, 500, torch.randn(1, 77, 32))
    eps_mod.square().mean().backward()
    assert len(calls) == 2

    plain = train(config(tiny_checkpoint / "base", depth_data, tmp_path / "plain", steps=2))
    saved = train(config(tiny_checkpoint / "base", depth_data, tmp_path / "ckpt", steps=2, gradient_checkpointing=True))
    a, b = branch_state(plain.export_dir / "jointnet"), branch_state(saved.export_dir / "jointnet")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


@pytest.mark.slow
def test_two_processes_share_the_work(tiny_checkpoint, depth_data, tmp_path):
    """Data-parallel on CPU (gloo), the way `accelerate launch` runs on several GPUs."""
    import os
    import subprocess
    import sys

    from worldgen.training.checkpoints import list_checkpoints, read_state

    out = tmp_path / "ddp"
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "worldgen.training",
            "--modality", "depth", "--base", str(tiny_checkpoint / "base"), "--data", str(depth_data),
            "--out", str(out), "--steps", "2", "--resolution", "32", "--batch-size", "2", "--num-workers", "0",
            "--warmup-steps", "0", "--validation-every", "0", "--validation-steps", "2", "--report-to", "none", "-q"]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines() == [str(out / "model")]  # one process reports
    step, folder = list_checkpoints(out)[-1]
    state = read_state(folder)
    assert step == 2 and state["world_size"] == 2 and state["samples_seen"] == 2 * 2 * 2
    assert (folder / "random_states_0.pkl").is_file() and (folder / "random_states_1.pkl").is_file()

    # Resume the 2-process run on one process: the data stream continues at sample 8, not at
    # step * (new batch per step), and the count of samples stays true.
    resumed = train(config(tiny_checkpoint / "base", depth_data, out, steps=4, resume=True, lr=None))
    step, folder = list_checkpoints(out)[-1]
    state = read_state(folder)
    assert resumed is not None and step == 4 and state["world_size"] == 1
    assert state["samples_seen"] == 2 * 2 * 2 + 2 * 2


def test_a_damaged_checkpoint_fails_as_one_line(tiny_checkpoint, depth_data, tmp_path):
    from worldgen.errors import ModelError

    out = tmp_path / "run"
    train(config(tiny_checkpoint / "base", depth_data, out, steps=1))
    (out / "checkpoints" / "step-00000001" / "random_states_0.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="delete it") as caught:
        train(config(tiny_checkpoint / "base", depth_data, out, steps=2, resume=True))
    assert "\n" not in str(caught.value)
