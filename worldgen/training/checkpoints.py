"""Resumable training state, written so that an interruption never leaves a half checkpoint.

``OUT/checkpoints/step-00000500/`` holds what ``accelerator.save_state`` writes (model weights as
safetensors; optimizer, scheduler, gradient scaler and every RNG state, which Accelerate reloads
with ``torch.load(weights_only=True)``), the EMA weights as safetensors with their counters as
JSON, and ``trainer_state.json`` (step, samples seen, the resolved config). It is written under a
hidden temporary name and renamed into place only when complete; the newest ``keep`` survive.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from ..scene.atomic import atomic_write_text
from ..errors import ModelError, UserInputError

CHECKPOINTS_DIR = "checkpoints"
STATE_NAME = "trainer_state.json"
EMA_WEIGHTS = "ema.safetensors"
EMA_STATE = "ema.json"
STATE_FORMAT = "worldgen-training-state"
STATE_VERSION = 1


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``out``, oldest first."""
    folder = Path(out) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith("step-") and name[5:].isdigit() and (entry / STATE_NAME).is_file():
            found.append((int(name[5:]), entry))
    return sorted(found)


def latest_checkpoint(out: Path) -> Optional[Path]:
    found = list_checkpoints(out)
    return found[-1][1] if found else None


def read_state(path: Path) -> dict:
    try:
        state = json.loads((Path(path) / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{path} is not a readable training checkpoint ({exc}); delete it to resume from an older one") from None
    if state.get("format") != STATE_FORMAT or not isinstance(state.get("step"), int):
        raise UserInputError(f"{path}/{STATE_NAME} is not a worldgen training state; delete the folder")
    return state


def _save_ema(ema, folder: Path) -> None:
    from safetensors.torch import save_file

    tensors = {f"shadow.{i}": p.detach().contiguous().cpu() for i, p in enumerate(ema.shadow_params)}
    save_file(tensors, str(folder / EMA_WEIGHTS))
    counters = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
    atomic_write_text(folder / EMA_STATE, json.dumps(counters, indent=2))


def _load_ema(ema, folder: Path) -> None:
    from safetensors.torch import load_file

    if not (folder / EMA_WEIGHTS).is_file():
        raise UserInputError(f"{folder} has no EMA weights; resume without --ema or from a run that used it")
    tensors = load_file(str(folder / EMA_WEIGHTS))
    shadow = [tensors[f"shadow.{i}"].to(p.device, p.dtype) for i, p in enumerate(ema.shadow_params)]
    if len(tensors) != len(shadow) or any(a.shape != b.shape for a, b in zip(shadow, ema.shadow_params)):
        raise UserInputError(f"{folder}: the EMA weights do not match this model; resume with the same settings")
    state = json.loads((folder / EMA_STATE).read_text(encoding="utf-8"))
    state["shadow_params"] = shadow
    ema.load_state_dict(state)


def save_checkpoint(accelerator, out: Path, step: int, state: dict, ema=None, keep: int = 3) -> Path:
    """Save everything needed to resume at ``step``; every process must call this."""
    folder = Path(out) / CHECKPOINTS_DIR
    final = folder / checkpoint_name(step)
    tmp = folder / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a run killed mid-save
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        if ema is not None:
            _save_ema(ema, tmp)
        record = {"format": STATE_FORMAT, "version": STATE_VERSION, "step": step, **state}
        atomic_write_text(tmp / STATE_NAME, json.dumps(record, indent=2, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in list_checkpoints(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path, ema=None) -> dict[str, Any]:
    """Restore model, optimizer, scheduler, RNG (and EMA) state; returns ``trainer_state.json``.

    Accelerate reads its pickles with ``torch.load(weights_only=True)``, which refuses any pickle
    that would construct objects; such a refusal, or any other damage, becomes one ModelError.
    Accelerate skips RNG states it cannot read without a word, which would make the resumed run
    silently differ; they are checked first.
    """
    path = Path(path)
    state = read_state(path)
    try:
        _check_rng_state(path, accelerator.process_index)
        accelerator.load_state(str(path))
    except Exception as exc:  # unpickling refusals and corrupt files surface as many types
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelError(f"cannot restore the training checkpoint {path} ({type(exc).__name__}: {detail}); "
                         "delete it to resume from an older one, or start a new --out") from None
    if ema is not None:
        _load_ema(ema, path)
    return state


def _check_rng_state(path: Path, process_index: int) -> None:
    from accelerate.utils import load

    file = path / f"random_states_{process_index}.pkl"
    # Missing: the run was saved with fewer processes. Resuming on more GPUs is allowed (the data
    # stream still continues exactly); only the extra processes' random draws start afresh.
    if file.is_file():
        load(str(file))  # the same safe loader Accelerate uses; raises where Accelerate would stay silent
