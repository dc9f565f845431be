"""Running real `worldgen` processes side by side (the concurrency tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def worldgen_command() -> list[str]:
    script = Path(sys.executable).with_name("worldgen")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "worldgen.cli.main"]


def run_together(argv_list: list[list], cwd: Path, timeout: float = 400, env: dict = None) -> list[tuple[int, str]]:
    """Start every command at once (real processes), wait for all; (exit code, stderr) each."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               WORLDGEN_LOCK_TIMEOUT="300", **(env or {}))
    procs = [subprocess.Popen(worldgen_command() + [str(a) for a in argv], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for argv in argv_list]
    results = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
