"""A short real training run on the GPU: a small SD-shaped model learns depth at 256 px.

Issue 7's device check. Everything is made here, offline: a random-weight base shaped like
Stable Diffusion (smaller widths, 8x VAE, CLIP text encoder), and a data folder of procedural
worlds (RGB, caption, exact depth) from worldgen's offline backend. Then `worldgen train` runs
stage 1 for a few hundred steps (optionally under `accelerate launch` on several GPUs), renders
validation samples, and this script reports the loss curve and throughput from its log.

    python3 benchmarks/train_gpu.py --work /tmp/wg-train --steps 300 --json-out $OUT/train_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROMPTS = ["a misty fjord at dawn", "rolling hills at noon", "desert dunes at sunset", "a snowy pine forest at night",
           "mountains above a lake", "a foggy forest with hills", "a beach at sunrise", "a glacier under stars"]

SMALL_UNET = dict(
    sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128, 256, 256),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=256, attention_head_dim=8, norm_num_groups=32, use_linear_projection=True,
)
SMALL_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 128, 128), layers_per_block=1,
    norm_num_groups=32, sample_size=256, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)


def build_base(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from worldgen.backends.jointnet.tiny import SD21_SCHEDULER, _write_base, tiny_tokenizer

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                          num_attention_heads=4, max_position_embeddings=77, projection_dim=256, hidden_act="gelu",
                          bos_token_id=0, eos_token_id=1, pad_token_id=1)
    parts = {"vae": AutoencoderKL(**SMALL_VAE), "text_encoder": CLIPTextModel(text), "tokenizer": tokenizer,
             "scheduler": DDIMScheduler(**SD21_SCHEDULER), "unet": UNet2DConditionModel(**SMALL_UNET)}
    _write_base(parts, folder)


def build_data(folder: Path, count: int) -> None:
    """Procedural worlds: 512x256 panorama crops with their caption and exact disparity."""
    import numpy as np
    from PIL import Image

    from worldgen.backend import GenerateRequest
    from worldgen.backends.procedural import ProceduralBackend

    folder.mkdir(parents=True)
    backend = ProceduralBackend()
    for i in range(count):
        prompt = PROMPTS[i % len(PROMPTS)]
        snap = backend.generate(GenerateRequest(prompt, width=512, height=256, seed=i))
        Image.fromarray((snap.image * 255 + 0.5).astype(np.uint8)).save(folder / f"w{i:03d}.png")
        np.save(folder / f"w{i:03d}.depth.npy", snap.modalities["depth"][..., 0], allow_pickle=False)
        (folder / f"w{i:03d}.txt").write_text(prompt + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/wg-train"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--gpus", type=int, default=1, help="processes under accelerate launch")
    parser.add_argument("--mixed-precision", default="bf16")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--samples-to", type=Path, default=None, help="copy the validation samples here")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    build_base(args.work / "base")
    build_data(args.work / "data", args.images)
    out = args.work / "run"
    train = ["-m", "worldgen.training", "--modality", "depth", "--base", str(args.work / "base"),
             "--data", str(args.work / "data"), "--out", str(out), "--steps", str(args.steps),
             "--resolution", str(args.resolution), "--batch-size", str(args.batch_size),
             "--warmup-steps", "30", "--log-every", "10", "--validation-every", str(max(args.steps // 3, 1)),
             "--validation-steps", "20", "--validation-prompt", "a misty fjord at dawn",
             "--checkpoint-every", str(args.steps), "--mixed-precision", args.mixed_precision,
             "--num-workers", "4", "--report-to", "none", "-q"]
    if args.gpus > 1:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(args.gpus), "--mixed_precision", args.mixed_precision] + train
    else:
        command = [sys.executable] + train
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1")
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"training failed:\n{run.stderr[-4000:]}")

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [(r["step"], r["loss"]) for r in log if r.get("loss") is not None]
    rates = sorted(r["samples_per_s"] for r in log if r.get("samples_per_s"))
    samples = sorted((out / "samples").rglob("*.png")) if (out / "samples").exists() else []
    if args.samples_to:
        args.samples_to.mkdir(parents=True, exist_ok=True)
        for path in samples[-3:]:
            shutil.copy(path, args.samples_to / path.name)
    first, last = losses[:3], losses[-3:]
    result = {
        "steps": args.steps, "gpus": args.gpus, "resolution": args.resolution, "batch_per_gpu": args.batch_size,
        "loss_first_windows": first, "loss_last_windows": last,
        "loss_fell": sum(v for _, v in last) / len(last) < 0.8 * sum(v for _, v in first) / len(first),
        "samples_per_s_median": rates[len(rates) // 2] if rates else None,
        "max_memory_gib": max((r.get("max_memory_gib") or 0) for r in log),
        "validation_samples": [str(p.relative_to(out)) for p in samples],
    }
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
