"""Speed and GPU memory of issue 22's explore tasks against the panorama they start from.

The goal (issue 22): on one H100 or H200 with full-size random weights, ``sphere`` plus ``layers``
on a 2048x512 world take at most 1.5x the published ``pano`` and peak under 24 GB. This builds
SD 2.1-base-shaped JointNet weights at random with the inpainting checkpoint's masked-latent input
(``sd21_models``: nothing is downloaded), then in one process: ``generate`` (the published recipe),
``complete_sphere`` on its result, ``complete_layers`` on that, each after one warm-up run, timed
with ``torch.cuda.synchronize()``; peak memory from the allocator's counters.

    . benchmarks/device_env.sh && python3 benchmarks/explore_speed.py --out "$OUT"   # on the GPU machine
    python3 benchmarks/explore_speed.py --device cpu --tiny --steps 2 --size 256x64 --view-size 64   # CPU dry run

Writes ``explore_speed.json`` into --out. No figures are committed from this script yet: it has not
run on a GPU (no device was available to the session that wrote it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import sd21_models  # noqa: E402
from speed_memory import make_backend  # noqa: E402

PROMPT = "a wide mountain valley with a lake at sunrise, 360 degree panorama"
GIB = 1 << 30


def timed(device, run):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = run()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (a CPU dry run)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", default="2048x512")
    parser.add_argument("--view-size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()

    from worldgen.backend import GenerateRequest
    from worldgen.explore.background import LayersRequest, complete_layers
    from worldgen.explore.sphere import SphereRequest, complete_sphere

    width, height = (int(v) for v in args.size.split("x"))
    cuda = torch.device(args.device).type == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    backend = make_backend(sd21_models.build(args.device, dtype, tiny=args.tiny, masked_input=True), args.device)
    tasks = {
        "pano": lambda: backend.generate(GenerateRequest(prompt=PROMPT, width=width, height=height, steps=args.steps)),
    }
    results, seconds, peaks = {}, {}, {}
    pano = tasks["pano"]()  # warm-up
    tasks["sphere"] = lambda: complete_sphere(backend, pano, SphereRequest(prompt=PROMPT, steps=args.steps,
                                                                          view_size=args.view_size))
    tasks["layers"] = lambda: complete_layers(backend, results.get("sphere", pano), LayersRequest(prompt=PROMPT,
                                                                                                  steps=args.steps))
    for name, run in tasks.items():
        if name != "pano":
            run()  # warm-up
        if cuda:
            torch.cuda.reset_peak_memory_stats(args.device)
        results[name], seconds[name] = timed(args.device, run)
        peaks[name] = round(torch.cuda.max_memory_allocated(args.device) / GIB, 2) if cuda else None
    ratio = (seconds["sphere"] + seconds["layers"]) / seconds["pano"]
    report = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "tiny": args.tiny, "size": args.size,
              "steps": args.steps, "view_size": args.view_size, "seconds": seconds, "peak_gib": peaks,
              "sphere_plus_layers_over_pano": round(ratio, 3),
              "hidden_pixels": int(results["layers"].background.mask.sum())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explore_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
