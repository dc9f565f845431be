"""Speed and memory settings for running the tiled sampler's models on a GPU.

Three jobs, each measured in ``benchmarks/NOTES.md``:

- ``SpeedSettings`` / ``speed_up``: the layout and kernel choices that make a latent-diffusion UNet
  fast without changing what it computes: NHWC ("channels-last") tensors for the convolutions,
  fused QKV projections (diffusers' own ``fuse_qkv_projections``), cuDNN autotuning and
  ``torch.compile`` of the model's forward, with an eager fallback when compilation fails.
- ``window_batch_for`` / ``vae_batch_for``: how many windows (or VAE tiles) one call may take, from
  the memory that is free now, so a 12 GB card runs the same code as a 141 GB one.
- ``offloaded``: keep a module (text encoder, VAE) in CPU memory and bring it to the GPU only for
  the call that needs it.

Nothing here changes results beyond float rounding: ``tests/perf`` compares each fast path with the
plain one on a tiny model. This module imports torch lazily, so importing it stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional

logger = logging.getLogger(__name__)

# Activation bytes of one window evaluation of a JointNet pair (both branches, one CFG half), per
# latent cell, per channel of the first UNet level, per byte of the dtype. Measured by tracking
# live tensors through the SD 2.1-base-shaped pair at 32x32 and 64x64 (bf16, CPU, flash SDPA):
# 31.2 kB per latent cell = 48.7 x 320 channels x 2 bytes; 64 leaves room for cuDNN workspaces
# and allocator rounding. benchmarks/speed_memory.py prints the measured value on the GPU.
PAIR_ACTIVATION_FACTOR = 64
# Decoder activation bytes per output pixel per byte of the dtype for one VAE tile (SD VAE:
# 128 channels at full resolution, about four such tensors alive at once, plus GroupNorm temporaries).
VAE_ACTIVATION_FACTOR = 1400
# Memory left unplanned for the caching allocator's rounding, cuBLAS/cuDNN workspaces and the canvas.
DEFAULT_RESERVE = 1 << 30
# Cards with less total memory than this get the memory-saving mode by default.
LOW_MEMORY_TOTAL = 16 << 30


@dataclass(frozen=True)
class SpeedSettings:
    """How to run the model. ``compile``: wrap the forward in ``torch.compile`` (``compile_mode``
    None is inductor's default; "reduce-overhead" adds CUDA graphs). ``dynamic``: compile once for
    any window batch size and canvas width (True) or specialise per shape (False; more compiles).
    ``attention``: force an SDPA backend ("cudnn", "flash", "efficient") or let PyTorch choose (None)."""

    channels_last: bool = False
    fuse_qkv: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False
    compile_mode: Optional[str] = None
    dynamic: Optional[bool] = True
    attention: Optional[str] = None

    @classmethod
    def for_device(cls, device) -> "SpeedSettings":
        """Everything that helps on CUDA (compile only where Triton can build kernels); nothing elsewhere,
        where these choices are untested or slower (oneDNN prefers its own layouts on CPU)."""
        import torch

        device = torch.device(device)
        if device.type != "cuda":
            return cls()
        return cls(channels_last=True, fuse_qkv=True, cudnn_benchmark=True, compile=compile_supported(device))

    @classmethod
    def named(cls, name: Optional[str], device) -> "SpeedSettings":
        """"auto" (or None): ``for_device``; "eager": the same without compile; "off": plain PyTorch."""
        from ..errors import UserInputError

        if name in (None, "auto"):
            return cls.for_device(device)
        if name == "eager":
            return replace(cls.for_device(device), compile=False)
        if name == "off":
            return cls()
        raise UserInputError(f"speed {name!r} is not one of auto, eager, off")


def compile_supported(device) -> bool:
    """torch.compile's GPU backend needs Triton and a GPU it supports (compute capability 7.0+)."""
    import torch

    try:
        from torch.utils._triton import has_triton
    except ImportError:  # a torch without inductor's Triton helpers
        return False
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return has_triton() and torch.cuda.get_device_capability(device)[0] >= 7


class CompiledCall:
    """``torch.compile(fn)`` that falls back to ``fn`` for good when compiling fails.

    A failure is taken to be the compiler's only when the eager call then succeeds: an error the
    eager function raises too (bad input, out of memory) is re-raised and keeps the compiled path."""

    def __init__(self, fn: Callable, **compile_kwargs: Any) -> None:
        import torch

        self.eager = fn
        self.compiled = torch.compile(fn, **compile_kwargs)
        self.error: Optional[BaseException] = None

    @property
    def active(self) -> bool:
        return self.error is None

    def __call__(self, *args, **kwargs):
        import torch

        if self.error is None:
            # One memory layout for every call: a channel slice of the stacked latent and a contiguous
            # batch would otherwise be different inputs to the compiled graph (a recompile each).
            args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
            kwargs = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
            try:
                with _no_duck_sizing():
                    return self.compiled(*args, **kwargs)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # compiler failures come in many exception types
                result = self.eager(*args, **kwargs)  # raises by itself if the input is what is wrong
                self.error = exc
                logger.warning("torch.compile failed (%s: %s); running eagerly from now on",
                               type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                return result
        return self.eager(*args, **kwargs)


def _no_duck_sizing():
    """Dynamic shapes without "duck sizing": a square 64x64 window must not teach the compiler that
    height always equals width, or the whole-panorama window (64x256) compiles the model again."""
    try:
        from torch.fx.experimental import _config as fx_config

        return fx_config.patch(use_duck_shape=False)
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def speed_up(module, settings: SpeedSettings, *, compile_method: str = "forward"):
    """Apply ``settings`` to ``module`` in place (a JointNetPair, a UNet or a VAE) and return it.

    Fused QKV adds ``to_qkv``/``to_kv`` weights next to the originals (diffusers keeps both), so
    call this on models used for inference, not on ones about to be saved."""
    import torch

    if settings.fuse_qkv and not _already_fused(module):
        for sub in _fusable(module):
            sub.fuse_qkv_projections()
    if settings.channels_last:
        module.to(memory_format=torch.channels_last)
    if settings.compile:
        method = getattr(module, compile_method)
        if not isinstance(method, CompiledCall):
            kwargs = {"dynamic": settings.dynamic}
            if settings.compile_mode:
                kwargs["mode"] = settings.compile_mode
            _inductor_defaults()
            setattr(module, compile_method, CompiledCall(method, **kwargs))
    return module


def _already_fused(module) -> bool:
    return any(getattr(sub, "fused_projections", False) for sub in module.modules())


def _fusable(module) -> list:
    """Sub-models that offer diffusers' ``fuse_qkv_projections`` (the UNet branches, the VAE), outermost first."""
    found, seen = [], set()
    for sub in module.modules():
        if hasattr(sub, "fuse_qkv_projections") and id(sub) not in seen:
            if any(sub is not other and sub in set(other.modules()) for other in found):
                continue
            found.append(sub)
            seen.add(id(sub))
    return found


def _inductor_defaults() -> None:
    """1x1 convolutions (JointNet's exchange layers, resnet shortcuts) as matrix products: inductor
    can then fuse their bias and the residual add around them."""
    try:
        import torch._inductor.config as inductor_config
    except ImportError:
        return
    inductor_config.conv_1x1_as_mm = True


@contextlib.contextmanager
def kernels(settings: SpeedSettings) -> Iterator[None]:
    """The process-wide kernel choices of ``settings`` for the duration of a task (restored after)."""
    import torch

    with contextlib.ExitStack() as stack:
        if settings.cudnn_benchmark:
            stack.enter_context(torch.backends.cudnn.flags(enabled=True, benchmark=True,
                                                           deterministic=False, allow_tf32=True))
        if settings.attention:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            names = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                     "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
            first = names[settings.attention]
            order = [first] + [b for b in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                                           SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH) if b != first]
            stack.enter_context(sdpa_kernel(order, set_priority=True))
        yield


# Memory ------------------------------------------------------------------------------------------

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
