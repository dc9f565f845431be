"""The child processes of ``time_to_world.py`` that are not `worldgen` commands: the original
pipeline on its own site (``original_pipeline.py``) and a resident pipeline's phases
(``served_phases.py``), and the ratios the report ends with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent

# What stabilityai/stable-diffusion-2-1-base's model_index.json names (no safety checker), which the
# original pipeline's ``from_pretrained`` reads and worldgen's loader does not need.
SD21_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.19.3",
    "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"]}


def original_site(wheels: Path, work: Path) -> Path:
    """diffusers 0.19.3 and the transformers / huggingface_hub / tokenizers of its time, installed from
    ``wheels`` (no network) into a folder only the original's child process sees."""
    site = work / "original-site"
    found = sorted(str(p) for p in Path(wheels).glob("*.whl"))
    if not found:
        raise FileNotFoundError(f"no wheels in {wheels}; see benchmarks/NOTES.md, 'The original pipeline'")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-cache-dir",
                    "--target", str(site), *found], check=True, capture_output=True, text=True)
    return site


def run_original(code: Optional[str], wheels: Optional[str], checkpoint: Path, base: Path, work: Path, *,
                 device: str, tiny: bool, repeats: int, timeout: float) -> dict:
    """``original_s``: the original pipeline's median seconds per panorama (its own code), or None with
    the reason."""
    if not code or not (Path(code) / "jointnetpano_pipeline.py").is_file():
        return {"original_s": None, "reason": f"no original code at {code!r} (pass --original-code; "
                                              "benchmarks/NOTES.md says how to fetch it)"}
    try:
        site = original_site(Path(wheels or Path(code).parent / "wheels"), work)
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"original_s": None, "reason": f"installing the original's wheels failed: {exc}"}
    index = base / "model_index.json"
    if not index.is_file():
        index.write_text(json.dumps(SD21_MODEL_INDEX, indent=2) + "\n")
    # Only the original's site and code on the path: never worldgen's diffusers or transformers.
    env = dict(os.environ, PYTHONPATH=str(site), USE_FLAX="0", USE_TF="0", HF_HUB_OFFLINE="1",
               PYTHONNOUSERSITE="1")
    size = ["--width", "128", "--height", "64", "--steps", "3", "--stride", "8", "--repeats", "1"] if tiny else \
        ["--repeats", str(repeats)]
    argv = [sys.executable, str(HERE / "original_pipeline.py"), "--code", str(Path(code).resolve()),
            "--base", str(base), "--model", str(checkpoint), "--device", device, *size]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=work)
    except subprocess.TimeoutExpired:
        return {"original_s": None, "reason": f"the original pipeline ran past {timeout:.0f} s"}
    if done.returncode != 0:
        return {"original_s": None, "reason": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_served_phases(env: dict, work: Path, *, device: str, tiny: bool, repeats: int, timeout: float) -> dict:
    """A resident pipeline's per-phase seconds per served-style world (fast preset)."""
    size = ["--size", "128x64", "--steps", "2", "--repeats", "1"] if tiny else ["--repeats", str(repeats)]
    argv = [sys.executable, str(HERE / "served_phases.py"), "--device", device, *size]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=work)
    except subprocess.TimeoutExpired:
        return {"reason": f"served_phases.py ran past {timeout:.0f} s"}
    if done.returncode != 0:
        return {"reason": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratios(report: dict) -> dict:
    """Each figure against the original's seconds (above 1: worldgen is faster), and the served
    path's overhead beyond the in-process world."""
    original = report.get("original_s")
    out = {}
    for name in ("published_s", "served_fast_s", "cold_fast_s", "cold_published_s", "original_style_s"):
        value = report.get(name)
        out[f"original_over_{name[:-2]}"] = round(original / value, 3) if original and value else None
    make = (report.get("served_phases") or {}).get("make_s")
    served = report.get("served_fast_s")
    out["served_overhead_s"] = round(served - make, 3) if served and make else None
    return out
