"""How much GPU memory a task may plan with, and how to keep idle modules off the GPU.

- ``window_batch_for`` / ``vae_batch_for``: how many windows (or VAE tiles) one call may take, from
  the memory that is free now, so a 12 GB card runs the same code as a 141 GB one.
- ``offloaded``: keep a module (the text encoder) in CPU memory and bring it to the GPU only for the
  call that needs it.

Imports torch lazily, so importing it stays cheap.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

# Activation bytes of one window evaluation of a JointNet pair (both branches, one CFG half), per
# latent cell, per channel of the first UNet level, per byte of the dtype. Measured by tracking
# live tensors through the SD 2.1-base-shaped pair at 32x32 and 64x64 (bf16, CPU, flash SDPA):
# 31.2 kB per latent cell = 48.7 x 320 channels x 2 bytes; 64 leaves room for cuDNN workspaces
# and allocator rounding. On the H200 a 20-window call under an 11 GiB cap fitted (benchmarks/NOTES.md).
PAIR_ACTIVATION_FACTOR = 64
# Decoder activation bytes per output pixel per byte of the dtype for one VAE tile (SD VAE:
# 128 channels at full resolution, about four such tensors alive at once, plus GroupNorm temporaries).
VAE_ACTIVATION_FACTOR = 1400
# Memory left unplanned for the caching allocator's rounding, cuBLAS/cuDNN workspaces and the canvas.
DEFAULT_RESERVE = 1 << 30
# Cards with less total memory than this get the memory-saving mode by default.
LOW_MEMORY_TOTAL = 16 << 30



def free_bytes(device) -> Optional[int]:
    """Bytes this process may still allocate on ``device``: free device memory plus what PyTorch's
    caching allocator holds unused, within any per-process memory fraction. None off CUDA."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    reserved = torch.cuda.memory_reserved(index)
    allocated = torch.cuda.memory_allocated(index)
    available = free + (reserved - allocated)
    fraction = _memory_fraction(index)
    if fraction is not None:
        available = min(available, int(fraction * total) - allocated)
    return max(0, available)


def _memory_fraction(index: int) -> Optional[float]:
    import torch

    getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if getter is None:
        return None
    try:
        fraction = float(getter(index))
    except (RuntimeError, TypeError):
        return None
    return fraction if 0 < fraction < 1 else None


def total_bytes(device) -> Optional[int]:
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = _memory_fraction(index)
    return int(total * fraction) if fraction is not None else int(total)


def low_memory(device) -> bool:
    """True on a GPU with less than 16 GiB for this process: offload what is idle, plan batches tightly."""
    total = total_bytes(device)
    return total is not None and total < LOW_MEMORY_TOTAL


def pair_window_bytes(pair, window: tuple[int, int], itemsize: int) -> int:
    """Estimated activation bytes of ONE window evaluation (both branches, one CFG half)."""
    width = int(pair.unet.config.block_out_channels[0])
    return int(PAIR_ACTIVATION_FACTOR * width * window[0] * window[1] * itemsize)


def window_batch_for(pair, window: tuple[int, int], rows_per_window: int, device, *,
                     reserve: int = DEFAULT_RESERVE, largest: Optional[int] = None) -> Optional[int]:
    """Windows per model call that fit in the memory free now (None: no limit known, e.g. on CPU).

    ``rows_per_window`` is the batch rows one window costs (2 with classifier-free guidance)."""
    import torch

    available = free_bytes(device)
    if available is None:
        return None
    itemsize = torch.empty((), dtype=pair.dtype).element_size()
    per_window = max(1, pair_window_bytes(pair, window, itemsize) * max(1, rows_per_window))
    batch = max(1, (available - reserve) // per_window)
    return int(min(batch, largest)) if largest else int(batch)


def vae_batch_for(vae, tile_px: int, images: int, device, *, reserve: int = DEFAULT_RESERVE,
                  largest: int = 8) -> int:
    """VAE tiles per call (each tile decodes ``images`` layers) that fit in the memory free now."""
    import torch

    available = free_bytes(device)
    if available is None:
        return largest
    itemsize = torch.empty((), dtype=next(vae.parameters()).dtype).element_size()
    per_tile = VAE_ACTIVATION_FACTOR * tile_px * tile_px * itemsize * max(1, images)
    return int(max(1, min(largest, (available - reserve) // per_tile)))


@contextlib.contextmanager
def offloaded(module, device, enabled: bool = True) -> Iterator[Any]:
    """Bring a CPU-resident ``module`` to ``device`` for the block, then back to the CPU, freeing the
    GPU memory it took. With ``enabled`` False (or a module already on ``device``) nothing moves."""
    import torch

    device = torch.device(device)
    param = next(module.parameters(), None)
    home = param.device if param is not None else device
    move = enabled and param is not None and home.type == "cpu" and device.type != "cpu"
    if move:
        module.to(device)
    try:
        yield module
    finally:
        if move:
            module.to(home)
            if device.type == "cuda":
                torch.cuda.empty_cache()
