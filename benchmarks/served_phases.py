"""Where a served world's time goes, phase by phase: a resident ``WorldPipeline`` (what `worldgen serve`
runs per job: warmed up at start, then generate, write the scene, build the GLB) timed in-process.

``time_to_world.py`` runs this as a child beside the `pano --server` calls; the difference between
``served_fast_s`` and this in-process ``make_s`` is what the HTTP round trips, the client process and
its copy of the files cost. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--size", default="2048x512")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default="a misty fjord at dawn, steep green cliffs, still water")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    from worldgen.api import WorldPipeline
    from worldgen.phases import PhaseTimer, recording

    started = time.perf_counter()
    pipe = WorldPipeline.from_pretrained(args.model, device=args.device)  # resident, as the server loads it
    pipe.backend
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    warmed = pipe.warm_up(width=width, height=height, preset=args.preset)
    warm_up_s = time.perf_counter() - started
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.repeats + 1):
            request = pipe.request(args.prompt, width=width, height=height, seed=seed, preset=args.preset,
                                   steps=args.steps)
            timer = PhaseTimer()
            t0 = time.perf_counter()
            with recording(timer):
                pipe.make(request, Path(tmp) / f"w{seed}.glb", Path(tmp) / f"w{seed}")
            runs.append({"make_s": time.perf_counter() - t0, "phases": dict(timer.phases)})
    names = dict.fromkeys(n for r in runs for n in r["phases"])
    print(json.dumps({
        "make_s": round(statistics.median(r["make_s"] for r in runs), 3),
        "make_seconds": [round(r["make_s"], 3) for r in runs],
        "phases_median": {n: round(statistics.median(r["phases"].get(n, 0.0) for r in runs), 3) for n in names},
        "load_s": round(loaded, 3), "warm_up_s": round(warm_up_s, 3), "warmed_up": warmed,
        "backend": pipe.name, "speed": str(getattr(pipe.backend, "speed", None))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
