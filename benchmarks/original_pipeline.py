"""Times the ORIGINAL JointNet panorama pipeline (apple/ml-jointnet, its own code on diffusers 0.19.3)
on the weights the benchmark wrote: ``original_s`` of ``time_to_world.py``.

Run as a child process whose path holds the original code and its own site (diffusers 0.19.3 and the
transformers / huggingface_hub of its time), never worldgen's; ``time_to_world.run_original`` sets that
up. Nothing of the original is committed here: the code lives in an ignored folder
(benchmarks/NOTES.md, "The original pipeline", says how to fetch it).

The call uses the arguments the original script's own entry point passes for a panorama (view batch
8, stride 32, circular padding, random offsets, the whole panorama for the first 40 % of the steps at
weight 5, linear tile edges of 8 latents, no LPIPS term), on a DDIM scheduler read from the base
folder, float16 on CUDA as the original script loads it. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", required=True, help="folder holding jointnetpano_pipeline.py")
    parser.add_argument("--base", required=True, help="the diffusers-layout base (SD 2.1-base)")
    parser.add_argument("--model", required=True, help="the JointNet checkpoint (unet/ + jointnet/)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--stride", type=int, default=32, help="view stride in latents (32: the published recipe)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default="a misty fjord at dawn, steep green cliffs, still water")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.code)

    import torch

    started = time.perf_counter()
    from diffusers import DDIMScheduler, __version__ as diffusers_version
    from jointnetpano_pipeline import StableDiffusionJointNetPanoPipeline
    imported = time.perf_counter() - started

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32  # the original script: fp16 on CUDA
    started = time.perf_counter()
    scheduler = DDIMScheduler.from_pretrained(args.base, subfolder="scheduler")
    pipe = StableDiffusionJointNetPanoPipeline.from_pretrained_w_jointnet(
        args.base, args.model, scheduler=scheduler, torch_dtype=dtype, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    loaded = time.perf_counter() - started

    def one(seed: int) -> float:
        generator = torch.Generator(device=device.type).manual_seed(seed)
        sync(device)
        t0 = time.perf_counter()
        out = pipe(args.prompt, height=args.height, width=args.width, num_inference_steps=args.steps,
                   guidance_scale=7.5, generator=generator, output_type="np", view_batch_size=8,
                   view_stride=args.stride, circular_padding=True, random_offset=True, include_full_pano=0.4,
                   full_pano_strength=5, boundary_type={"type": "linear", "size": 8},
                   lpips_weight={"init": 0.0, "decay": 0.95, "skip_overlap": False})
        sync(device)
        seconds = time.perf_counter() - t0
        assert out.images[0].shape[:2] == (args.height, args.width), out.images[0].shape
        return seconds

    first = one(0)  # the original in a warm process, as published_s is measured: the first call apart
    runs = [one(seed) for seed in range(1, args.repeats + 1)]
    print(json.dumps({"original_s": round(statistics.median(runs), 3), "seconds": [round(s, 3) for s in runs],
                      "first_call_s": round(first, 3), "import_s": round(imported, 3), "load_s": round(loaded, 3),
                      "dtype": str(dtype).replace("torch.", ""), "diffusers": diffusers_version,
                      "steps": args.steps, "size": [args.width, args.height]}))
    return 0


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    sys.exit(main())
