"""Writing a checkpoint once as safetensors in the compute dtype (`worldgen models add` converts
pickled weights so later runs read them straight onto the device). What it writes is bounded: every
tensor's shape is checked against the branch config first (a stride-0 tensor in a 1.5 MB pickle
claimed 957 MB), and the total must fit the store's free disk space, refused up front otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

from worldgen.errors import ModelError

from .checkpoint_check import check_branch
from .loading import BRANCH_DIRS, CONFIG_NAME, SAFETENSORS_NAME, WORLDGEN_META, read_state_dict, weights_file

HEADROOM_BYTES = 64 << 20  # left free beyond the copy itself (the index, other writers)


def converted_bytes(checkpoint: Path, dtype: str) -> int:
    """What the converted copy will take: checked shapes times the dtype's size (integer tensors
    are counted at 8 bytes, an upper bound)."""
    import math

    import torch

    size = torch.finfo(getattr(torch, dtype)).bits // 8
    total = 0
    for sub in BRANCH_DIRS:
        total += sum(math.prod(shape) * size for shape in check_branch(checkpoint / sub).values())
    return total


def write_converted(checkpoint: Path, target: Path, dtype: str) -> None:
    """``checkpoint``'s branches into ``target`` in the official layout: config.json copied byte for
    byte, weights as safetensors with every floating-point tensor cast to ``dtype`` exactly as loading
    the original in that dtype casts it (so the copy computes the same)."""
    import torch
    from safetensors.torch import save_file

    needed = converted_bytes(checkpoint, dtype)
    free = shutil.disk_usage(target.parent).free
    if needed + HEADROOM_BYTES > free:
        raise ModelError(f"converting {checkpoint} needs {needed / 2**20:.0f} MiB but the model store at "
                         f"{target.parent} has {free / 2**20:.0f} MiB free; free some space, or add the model "
                         f"with --no-convert")
    cast = getattr(torch, dtype)
    for sub in BRANCH_DIRS:
        (target / sub).mkdir(parents=True)
        state = read_state_dict(weights_file(checkpoint / sub))
        state = {k: (v.to(cast) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
        try:
            save_file(state, str(target / sub / SAFETENSORS_NAME), metadata={"format": "pt", "dtype": dtype})
        except Exception as exc:  # the Rust writer reports a full disk as its own error type
            raise ModelError(f"cannot write the converted copy into {target} ({' '.join(str(exc).split())[:160]}); "
                             f"free disk space in the model store, or add the model with --no-convert") from None
        del state
        shutil.copyfile(checkpoint / sub / CONFIG_NAME, target / sub / CONFIG_NAME)
    if (checkpoint / WORLDGEN_META).is_file():
        shutil.copyfile(checkpoint / WORLDGEN_META, target / WORLDGEN_META)
