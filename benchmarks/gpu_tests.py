"""Run the repository's ``gpu``-marked tests (``pytest -m gpu``: CUDA graphs, torch.compile, a whole
panorama on the CUDA fast paths) before a GPU benchmark, so those paths are tested wherever the
benchmarks run. The result goes into the benchmark's report; a failure is reported, not hidden."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_gpu_tests(log_path: Path, timeout_s: float = 900.0) -> dict:
    """{'returncode', 'summary' (pytest's last line), 'wall_s', 'log'}; returncode 5 means none were collected."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    argv = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", str(REPO / "tests")]
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"returncode": code, "summary": lines[-1] if lines else "", "wall_s": round(time.perf_counter() - started, 1),
            "log": str(log_path)}


def failed(result: dict) -> bool:
    return result.get("returncode") not in (0, None)
