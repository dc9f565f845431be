"""Benchmark: GLB (and splat) export of a procedural panorama world: file sizes and times.

    .venv/bin/python benchmarks/export_glb.py [--runs 5] [--sizes 2048x512,4096x1024] [--json OUT.json]

Times ``worldgen.export_files.export_bytes`` (geometry, simplification, texture and GLB assembly; no
disk) and reports medians of several runs, side by side in one run for: the default export
(simplified, unlit, 16-bit indices, sky shell, ground disc, skirts), the opt-in quantized variants, the full-resolution grid
(``simplify=false``, what every export was before), and the splat export. The machine's load
average is printed too, because a busy machine slows every run. The scene comes from the
procedural backend (sky, ridges at distinct distances and ground), so cuts, sky and skirts all do
real work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

VARIANTS = {
    "glb default": ("glb", {}),
    "glb quantize=true": ("glb", {"quantize": True}),
    "glb quantize=true uv16=true": ("glb", {"quantize": True, "uv16": True}),
    "glb full grid (simplify=false)": ("glb", {"simplify": False}),
    "splat": ("splat", {}),
}


def make_snapshot(width: int, height: int):
    from worldgen.backend import GenerateRequest
    from worldgen.registry import get_registry

    backend = get_registry().backend("procedural").load({})
    request = GenerateRequest(prompt="a misty fjord at dawn", width=width, height=height, span_deg=360.0, seed=0,
                              steps=1, guidance=1.0, modality="depth")
    return backend.generate(request, None)


def measure(snapshot, fmt: str, options: dict, runs: int) -> dict:
    from worldgen.export_files import export_bytes

    export_bytes(snapshot, fmt, options)  # warm-up: imports, first-touch of memory
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        data = export_bytes(snapshot, fmt, options)
        times.append(time.perf_counter() - start)
        size = len(data)
        del data
    return {"median_s": round(statistics.median(times), 4), "fastest_s": round(min(times), 4),
            "slowest_s": round(max(times), 4), "bytes": size, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="2048x512,4096x1024")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = {"cores": os.cpu_count(), "results": []}
    for size in args.sizes.split(","):
        width, height = (int(x) for x in size.lower().split("x"))
        snapshot = make_snapshot(width, height)
        for name, (fmt, options) in VARIANTS.items():
            row = dict(size=size, variant=name, **measure(snapshot, fmt, options, args.runs),
                       load_average=[round(x, 2) for x in os.getloadavg()])
            results["results"].append(row)
            print(f"{size:>10}  {name:<32} median {row['median_s']:.3f} s  (fastest {row['fastest_s']:.3f}, "
                  f"slowest {row['slowest_s']:.3f})  file {row['bytes'] / 1e6:.2f} MB  load {row['load_average'][0]}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
