"""Benchmark: a whole `worldgen pano` process on the procedural backend, cold, GLB included.

    .venv/bin/python benchmarks/procedural_speed.py [--runs 5] [--sizes 2048x512,4096x1024]
                                                    [--prompts "a misty fjord at dawn,..."] [--json OUT.json]

Each run is a fresh process (`worldgen pano PROMPT --backend procedural --size WxH -q --verbose`
into a temporary folder), timed from outside, so interpreter start-up, imports, world building,
rendering, the scene write and the GLB export all count. Reports, per size, the median wall time
over all runs and prompts, the median CPU time of the process (user + system: what the work costs
when the machine is not shared) and the phases `--verbose` prints. The issue's budget: 2048x512
in at most 5 s, 4096x1024 in at most 20 s, on 2 cores. The load average is printed beside the
figures, because other work on the machine slows every run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = ("a misty fjord at dawn", "a desert canyon at noon", "a snowy pine forest at night",
           "a tropical beach with palm trees", "a volcanic island in a stormy sea")
BUDGET_S = {"2048x512": 5.0, "4096x1024": 20.0}


def one_run(prompt: str, size: str, folder: Path) -> dict:
    exe = Path(sys.executable).with_name("worldgen")
    out = folder / f"w{time.monotonic_ns()}.glb"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(exe), "pano", prompt, "--backend", "procedural", "--size", size, "-q", "--verbose",
                           "-o", str(out)], capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"worldgen pano failed: {proc.stderr.strip()[-500:]}")
    phases = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"phase (.+?)\s+([\d.]+) s", proc.stderr)}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"prompt": prompt, "wall_s": wall, "cpu_s": cpu, "glb_mb": out.stat().st_size / 1e6, "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per prompt and size")
    parser.add_argument("--sizes", default="2048x512,4096x1024")
    parser.add_argument("--prompts", default=",".join(PROMPTS[:1]), help="comma-separated prompts")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    report = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            runs = [one_run(p, size, Path(tmp)) for _ in range(args.runs) for p in args.prompts.split(",")]
            wall = statistics.median(r["wall_s"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            report["sizes"][size] = {"median_wall_s": wall, "median_cpu_s": cpu, "budget_s": BUDGET_S.get(size),
                                     "load_after": os.getloadavg(), "runs": runs}
            print(f"{size}: median wall {wall:.2f} s, median CPU {cpu:.2f} s (budget {BUDGET_S.get(size)} s) over "
                  f"{len(runs)} runs; GLB {statistics.median(r['glb_mb'] for r in runs):.1f} MB; "
                  f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    report["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
