"""The JointNet backend's settings: their names, which model a name means, and the device, dtype,
region-mode and speed/memory checks, each made here once before any weights load.

Light at import time: torch is imported inside the functions that need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from worldgen.errors import ModelError, UserInputError

SETTINGS = ("model", "base", "device", "dtype", "scheduler", "window_batch")
# Issue 9 additions: a second checkpoint sharing the RGB branch (three modalities at once, see
# multimodal.py) and how region prompts condition windows (see worldgen.geometry.regions).
WORLD_SETTINGS = ("extra_model", "region_mode")
SETTINGS = SETTINGS + WORLD_SETTINGS
# Issue 8 additions: the sampling preset (worldgen.sampler.presets), the speed settings and the
# memory mode (worldgen.sampler.perf, worldgen.sampler.memory).
PERF_SETTINGS = ("preset", "speed", "memory")
SETTINGS = SETTINGS + PERF_SETTINGS
# Issue 23: which of a checkpoint's modality branches to run ("depth,edges"; default: all it has).
SETTINGS = SETTINGS + ("modality",)
# Issue 24: whether the process keeps the model for many worlds (serve, batch, the API in a loop:
# True, the default) or makes one (`worldgen pano`: False, no warm-up costs it cannot win back).
SETTINGS = SETTINGS + ("resident",)
# ... and the first request's text, [prompt, negative, do_cfg], encoded while the branches load
# (early_text.py; never recorded: it changes nothing but when the encoding happens).
SETTINGS = SETTINGS + ("text_hint",)
MEMORY_MODES = ("auto", "low", "high")
DTYPES = ("float32", "float16", "bfloat16")


def resolve_model(name: Optional[str], base: Optional[str] = None) -> tuple[Path, Path]:
    """(checkpoint folder, base folder) for --model (a folder or a registered name; None: the
    registered default) and --base (None: the registered or bundled base)."""
    from .store import default_model, resolve_model as store_resolve

    if not name:
        entry = default_model()
        if entry is None:
            raise ModelError("no JointNet model given; pass --model CHECKPOINT_DIR or register one with "
                             "`worldgen models add FILE.zip --name NAME --default`")
        name = entry.name
    return store_resolve(name, base)


def device_for(name: Optional[str]):
    import torch

    if name:
        try:
            return torch.device(name)
        except RuntimeError:
            raise UserInputError(f"device {name!r} is not a torch device; use cuda, cuda:1, mps or cpu") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_region_mode(name: Optional[str]) -> str:
    from worldgen.geometry.regions import REGION_MODES

    if name is None:
        return "blend"
    if name not in REGION_MODES:
        raise UserInputError(f"region mode {name!r} is not one of {', '.join(REGION_MODES)}")
    return name


def check_perf_settings(settings: dict, device) -> None:
    """Fail fast on a bad speed or memory mode (before loading gigabytes of weights)."""
    from worldgen.sampler.perf import SpeedSettings

    SpeedSettings.named(settings.get("speed"), device)
    if not isinstance(settings.get("resident", True), bool):
        raise UserInputError(f"resident must be true or false, not {settings.get('resident')!r}")
    memory = settings.get("memory")
    if memory not in (None, *MEMORY_MODES):
        raise UserInputError(f"memory mode {memory!r} is not one of {', '.join(MEMORY_MODES)}")


def compute_dtype_name(device: Optional[str] = None) -> str:
    """The dtype name `worldgen pano` computes in on this machine's default (or the named) device."""
    return str(dtype_for(None, device_for(device))).replace("torch.", "")


def dtype_for(name: Optional[str], device):
    import torch

    if name is None:
        if device.type != "cuda":
            return torch.float32
        # bfloat16 where the GPU has it (float32's range: no overflow, no per-step checks), else float16.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in DTYPES:
        raise UserInputError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)
