"""`worldgen pano --verbose` prints where the time went, phase by phase, on stderr (issue 14); a
real process, so the start-up (interpreter and imports) is part of what it reports."""

import os
import re
import subprocess
import sys
from pathlib import Path

PHASE = re.compile(r"^phase (.+?)\s+(\d+\.\d{3}) s$")


def _worldgen(*args, cwd):
    exe = Path(sys.executable).with_name("worldgen")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_verbose_prints_every_phase_of_a_whole_pano_run(tmp_path, tiny_checkpoint):
    done = _worldgen("pano", "a misty fjord", "--model", tiny_checkpoint, "--device", "cpu", "--size", "64x16",
                     "--steps", "2", "-o", tmp_path / "w.glb", "-q", "--verbose", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    phases = {m.group(1).strip(): float(m.group(2)) for m in map(PHASE.match, done.stderr.splitlines()) if m}
    for name in ("start-up (python, imports)", "load", "import torch, diffusers, transformers", "load vae",
                 "load text encoder", "load jointnet", "encode text", "sample", "decode", "write scene + export",
                 "write scene", "export", "total"):
        assert name in phases, done.stderr
    # The scene and the GLB are written at once: two parts of one top-level phase (issue 24).
    top = ("start-up (python, imports)", "load", "encode text", "sample", "decode", "write scene + export",
           "other (imports in the command, set-up)")
    assert abs(sum(phases[n] for n in top) - phases["total"]) < 0.01  # the top-level phases are the whole run
    assert phases["load jointnet"] <= phases["load"]
    assert (tmp_path / "w.glb").is_file()


def test_without_verbose_nothing_is_printed(tmp_path, tiny_checkpoint):
    done = _worldgen("pano", "a lake", "--model", tiny_checkpoint, "--device", "cpu", "--size", "64x16",
                     "--steps", "1", "-o", tmp_path / "w.glb", "-q", cwd=tmp_path)
    assert done.returncode == 0 and "phase" not in done.stderr, done.stderr
