"""Benchmark: GLB export of a 4096x1024 panorama world (target: under 3 s on a 2-core machine).

    .venv/bin/python benchmarks/export_glb.py [--runs 5] [--size 4096x1024] [--texture jpeg|png]

Times ``worldgen.export_files.export_bytes(snapshot, "glb")`` (geometry, triangulation, texture
and GLB assembly; no disk) and prints the median, fastest and slowest of several runs, with the
machine's load average, because a busy machine slows every run. The scene comes from the
procedural backend (a layered landscape with sky, ridges and ground), so cuts, sky and backdrop
all do real work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def make_snapshot(width: int, height: int):
    from worldgen.backend import GenerateRequest
    from worldgen.registry import get_registry

    backend = get_registry().backend("procedural").load({})
    request = GenerateRequest(prompt="a misty fjord at dawn", width=width, height=height, span_deg=360.0, seed=0,
                              steps=1, guidance=1.0, modality="depth")
    return backend.generate(request, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="4096x1024")
    parser.add_argument("--texture", default="jpeg", choices=("jpeg", "png"))
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))

    from worldgen.export_files import export_bytes

    snapshot = make_snapshot(width, height)
    export_bytes(snapshot, "glb", {"texture": args.texture})  # warm-up: imports, first-touch of memory
    times, size = [], 0
    for _ in range(args.runs):
        start = time.perf_counter()
        data = export_bytes(snapshot, "glb", {"texture": args.texture})
        times.append(time.perf_counter() - start)
        size = len(data)
        del data
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"glb export {width}x{height} ({width * height / 1e6:.1f} M vertices), texture={args.texture}, "
          f"{args.runs} runs on {os.cpu_count()} cores (load average {load}):")
    print(f"  median {statistics.median(times):.3f} s   fastest {min(times):.3f} s   slowest {max(times):.3f} s   "
          f"file {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
