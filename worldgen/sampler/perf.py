"""Speed and memory settings for running the tiled sampler's models on a GPU.

Three jobs, each measured in ``benchmarks/NOTES.md``:

- ``SpeedSettings`` / ``speed_up``: kernel and launch choices that make a latent-diffusion UNet
  faster without changing what it computes: fused QKV projections (diffusers' own
  ``fuse_qkv_projections``), cuDNN autotuning, cuDNN attention first in SDPA's order, and one CUDA
  graph per window-batch shape (``GraphedCall``). ``speed="compile"`` adds a static-shape
  ``torch.compile`` of the UNet blocks (``CompiledBlocks``, eager fallback, kept on disk by
  ``compile_cache_dir``) in channels-last under the same CUDA graphs: -24% on the published recipe
  on an H200, but about 110 s of compile the first time on a machine and 20 s per process after,
  so it is opt-in (benchmarks/NOTES.md, issue 14).
- ``window_batch_for`` / ``vae_batch_for``: how many windows (or VAE tiles) one call may take, from
  the memory that is free now, so a 12 GB card runs the same code as a 141 GB one.
- ``offloaded``: keep a module (the text encoder) in CPU memory and bring it to the GPU only for the
  call that needs it.

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
# and allocator rounding. On the H200 a 20-window call under an 11 GiB cap fitted (benchmarks/NOTES.md).
PAIR_ACTIVATION_FACTOR = 64
# Decoder activation bytes per output pixel per byte of the dtype for one VAE tile (SD VAE:
# 128 channels at full resolution, about four such tensors alive at once, plus GroupNorm temporaries).
VAE_ACTIVATION_FACTOR = 1400
# Memory left unplanned for the caching allocator's rounding, cuBLAS/cuDNN workspaces and the canvas.
DEFAULT_RESERVE = 1 << 30
# Cards with less total memory than this get the memory-saving mode by default.
LOW_MEMORY_TOTAL = 16 << 30


SPEED_NAMES = ("auto", "eager", "compile", "off")


@dataclass(frozen=True)
class SpeedSettings:
    """How to run the model.

    ``attention``: the SDPA backend tried first ("cudnn", "flash", "efficient"; None: PyTorch's
    order); PyTorch falls back to the next one where a shape is not supported.
    ``cuda_graphs``: record each window-batch shape's forward once as a CUDA graph and replay it, so
    the Python cost of launching ~2,000 kernels per call disappears (``GraphedCall``).
    ``compile``: ``torch.compile`` with static shapes (``dynamic`` False: the recipe has two window
    shapes, so a few exact graphs beat one symbolic one). ``compile_scope`` "blocks" compiles each
    UNet resnet and transformer block (``CompiledBlocks``): blocks of the same class and shape share
    one compiled graph, so both branches and the repeated blocks cost one compile; "pair" compiles
    the whole two-branch forward (``CompiledCall``). ``cuda_graphs`` then records the (partly
    compiled) forward as before. Compiled code is kept on disk (``compile_cache_dir``), so a second
    process loads it instead of compiling again."""

    channels_last: bool = False
    fuse_qkv: bool = False
    cudnn_benchmark: bool = False
    attention: Optional[str] = None
    cuda_graphs: bool = False
    compile: bool = False
    compile_mode: Optional[str] = None
    dynamic: Optional[bool] = False
    compile_scope: str = "blocks"
    compile_blocks: tuple = ()  # block class names for scope "blocks" (empty: COMPILED_BLOCKS)

    @classmethod
    def for_device(cls, device) -> "SpeedSettings":
        """What measured fastest on CUDA (benchmarks/NOTES.md): fused QKV, cuDNN autotuning, cuDNN
        attention first, CUDA graphs; bf16 comes from the backend's dtype. Nothing elsewhere, where
        these choices are untested or slower. Compile is opt-in ("compile"): it pays in a process
        that makes several panoramas, not in a one-shot one (benchmarks/NOTES.md)."""
        import torch

        device = torch.device(device)
        if device.type != "cuda":
            return cls()
        return cls(fuse_qkv=True, cudnn_benchmark=True, attention="cudnn", cuda_graphs=True)

    @classmethod
    def named(cls, name, device) -> "SpeedSettings":
        """"auto" (or None): ``for_device``; "eager": the same without CUDA graphs; "compile": with
        the UNet blocks compiled (static shapes, channels-last) under the CUDA graphs, where Triton
        works; "off": plain PyTorch. A SpeedSettings passes through."""
        from ..errors import UserInputError

        if isinstance(name, cls):
            return name
        if name in (None, "auto"):
            return cls.for_device(device)
        if name == "eager":
            return replace(cls.for_device(device), cuda_graphs=False)
        if name == "compile":
            # Where Triton cannot run (CPU, MPS, old GPUs, a torch without inductor) "compile" is
            # "auto": the eager path stays the default there. Channels-last only with the compiler:
            # eagerly, GroupNorm and LayerNorm convert layouts themselves and measured slower.
            if not compile_supported(device):
                return cls.for_device(device)
            return replace(cls.for_device(device), compile=True, channels_last=True)
        if name == "off":
            return cls()
        raise UserInputError(f"speed {name!r} is not one of {', '.join(SPEED_NAMES)}")


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


# The UNet blocks that carry the memory-bound glue between the matrix kernels (GroupNorm + SiLU,
# the time-embedding add, residual adds, LayerNorm, GEGLU, the transformers' projections).
# Samplers (one convolution each) stay eager: compiling them saves nothing.
COMPILED_BLOCKS = ("ResnetBlock2D", "Transformer2DModel")
# Compiled graphs one block class may hold: every (channels, size) its instances see, for each
# window shape (the recipe has two: the 64x64 windows and the whole panorama). Dynamo's default
# (8) would leave the rest eager.
RECOMPILE_LIMIT = 64


class CompiledBlocks:
    """Regional compilation: ``torch.compile`` of each block class's forward (static shapes), used
    by every instance of the class in ``module``. Dynamo keeps compiled code per code object and
    guards on shapes, not on which instance calls it, so the RGB and the modality branch and the
    repeated blocks of a level share one compiled graph per shape: far less to compile than the
    whole pair (every graph once per process, or once per machine with the on-disk cache).

    The first compiler failure switches every block back to eager for good (the error is kept);
    an error the eager block raises too (bad input, out of memory) is re-raised instead."""

    def __init__(self, module, classes=COMPILED_BLOCKS, **compile_kwargs: Any) -> None:
        import torch
        import torch._dynamo.config as dynamo_config

        _raise_recompile_limit(dynamo_config)  # one graph per block shape, not dynamo's default 8
        self.error: Optional[BaseException] = None
        self.blocks = [m for m in module.modules() if type(m).__name__ in classes]
        compiled: dict = {}
        for block in self.blocks:
            kind = type(block)
            if kind not in compiled:
                compiled[kind] = torch.compile(kind.forward, **compile_kwargs)
            block.forward = self._bind(block, kind.forward, compiled[kind])
            block._worldgen_compiled = self  # the latest owner (a triple re-owns its pair's blocks)

    @property
    def active(self) -> bool:
        return self.error is None

    def remove(self) -> None:
        """Back to the classes' own forwards."""
        for block in self.blocks:
            if block.__dict__.get("_worldgen_compiled") is self:
                block.__dict__.pop("forward", None)
                block.__dict__.pop("_worldgen_compiled", None)

    def _bind(self, block, eager: Callable, compiled: Callable) -> Callable:
        import torch

        def forward(*args, **kwargs):
            if self.error is None:
                try:
                    return compiled(block, *args, **kwargs)
                except torch.OutOfMemoryError:
                    raise
                except Exception as exc:  # compiler failures come in many exception types
                    result = eager(block, *args, **kwargs)  # raises by itself if the input is wrong
                    self.error = exc
                    logger.warning("torch.compile failed (%s: %s); running eagerly from now on",
                                   type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                    return result
            return eager(block, *args, **kwargs)

        return forward


def compile_cache_dir():
    """Where compiled kernels are kept across processes: $TORCHINDUCTOR_CACHE_DIR if set, else
    ``compile-cache/`` in worldgen's home (next to the model store)."""
    import os
    from pathlib import Path

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    from ..backends.jointnet.store import store_root

    return store_root() / "compile-cache"


class GraphedCall:
    """``fn`` replayed from CUDA graphs: one graph per input signature (shapes, dtypes, strides).

    The first call with a new signature runs ``fn`` twice on a side stream (cuDNN picks its
    algorithms there), then records it into a graph with private copies of the inputs; later calls
    copy their inputs in, replay, and return copies of the outputs. All graphs share one memory
    pool, which is safe here because calls run one after another on one stream and every graph's
    inputs and outputs stay referenced. Anything unusual (CPU tensors, non-tensor arguments other
    than None/numbers, weights that moved, a stream already capturing) runs ``fn`` directly; a
    failed capture switches graphs off for good."""

    def __init__(self, fn: Callable, module=None, warmup: int = 2, max_graphs: int = 8) -> None:
        self.eager = fn
        self.module = module
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.graphs: dict = {}
        self.pool = None
        self.weights_key = None
        self.error: Optional[BaseException] = None

    @property
    def active(self) -> bool:
        return self.error is None

    def _weights(self):
        param = next(self.module.parameters(), None) if self.module is not None else None
        return None if param is None else (param.data_ptr(), param.dtype)

    def _signature(self, args, kwargs):
        import torch

        parts = []
        for value in list(args) + [kwargs[k] for k in sorted(kwargs)]:
            if isinstance(value, torch.Tensor):
                if value.device.type != "cuda":
                    return None
                parts.append((tuple(value.shape), value.dtype, value.stride(), value.device))
            elif value is None or isinstance(value, (bool, int, float, str)):
                parts.append(value)
            else:
                return None
        return tuple(sorted(kwargs)), tuple(parts)

    def __call__(self, *args, **kwargs):
        import torch

        if self.error is not None:
            return self.eager(*args, **kwargs)
        args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
        kwargs = {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        key = self._signature(args, kwargs)  # None for CPU tensors and unusual arguments
        if key is None or torch.cuda.is_current_stream_capturing():
            return self.eager(*args, **kwargs)
        weights = self._weights()
        if self.weights_key is not None and weights != self.weights_key:
            return self.eager(*args, **kwargs)  # e.g. the float32 redo of a float16 step
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.max_graphs:
                return self.eager(*args, **kwargs)
            try:
                entry = self._capture(args, kwargs)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # a kernel that cannot be captured: stay eager
                self.error = exc
                self.graphs.clear()
                logger.warning("CUDA graph capture failed (%s: %s); running without graphs",
                               type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                return self.eager(*args, **kwargs)
            self.graphs[key] = entry
            self.weights_key = weights
        graph, static_args, static_kwargs, outputs = entry
        for dst, src in zip(_tensors(static_args, static_kwargs), _tensors(args, kwargs)):
            dst.copy_(src)
        graph.replay()
        return _map_tensors(outputs, lambda t: t.clone())

    def _capture(self, args, kwargs):
        import torch

        static_args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
        static_kwargs = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.eager(*static_args, **static_kwargs)
        torch.cuda.current_stream().wait_stream(side)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            outputs = self.eager(*static_args, **static_kwargs)
        return graph, static_args, static_kwargs, outputs


def _tensors(args, kwargs) -> list:
    import torch

    values = list(args) + [kwargs[k] for k in sorted(kwargs)]
    return [v for v in values if isinstance(v, torch.Tensor)]


def _map_tensors(value, fn):
    import torch

    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


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
    # The layout asked for, both ways: a second backend on the same model with other settings must
    # not inherit the first one's layout. A conversion moves the weights, so graphs start afresh.
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    weight = next((p for p in module.parameters() if p.ndim == 4), None)
    moved = weight is not None and not weight.is_contiguous(memory_format=layout)
    if moved:
        module.to(memory_format=layout)
    # One wrapper at a time: a second backend on the same model (other settings) starts from the
    # plain forward again; the same settings keep the wrapper and what it has built.
    current = getattr(module, compile_method)
    wrapped = isinstance(current, (CompiledCall, GraphedCall))
    plain = current
    while isinstance(plain, (CompiledCall, GraphedCall)):
        plain = plain.eager
    if wrapped and (moved or getattr(current, "settings", None) != settings):
        # Graphs bake in the weights' addresses and the kernels chosen (attention backend): other
        # settings or moved weights need a fresh recorder.
        module.__dict__.pop(compile_method, None)
        current, wrapped = plain, False
    blocks = module.__dict__.get("_worldgen_blocks")
    want_blocks = settings.compile and settings.compile_scope == "blocks"
    if blocks is not None and (not want_blocks or blocks.settings != settings):
        blocks.remove()
        del module.__dict__["_worldgen_blocks"]
        blocks = None
    if wrapped:
        return module
    kwargs: dict = {"dynamic": settings.dynamic}
    if settings.compile_mode:
        kwargs["mode"] = settings.compile_mode
    if settings.compile:
        _inductor_defaults()
    if want_blocks and blocks is None:
        blocks = CompiledBlocks(module, settings.compile_blocks or COMPILED_BLOCKS, **kwargs)
        blocks.settings = settings
        module.__dict__["_worldgen_blocks"] = blocks
    wrapper = plain
    if settings.compile and settings.compile_scope == "pair":
        wrapper = CompiledCall(wrapper, **kwargs)
    if settings.cuda_graphs:
        wrapper = GraphedCall(wrapper, module=module)
    if wrapper is not plain:
        wrapper.settings = settings
        setattr(module, compile_method, wrapper)
    else:
        module.__dict__.pop(compile_method, None)  # back to the class's own method
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
    """Process-wide compiler settings, each only raised or set, never lowered:
    - the on-disk caches in ``compile_cache_dir`` (inductor's FX graph and AOTAutograd caches and
      Triton's kernels live there; both caches are on by default), so the compile is paid once
      per machine; a TORCHINDUCTOR_CACHE_DIR the user set wins;
    - 1x1 convolutions (JointNet's exchange layers, resnet shortcuts) as matrix products: inductor
      can then fuse their bias and the residual add around them;
    - room for one graph per block shape (``RECOMPILE_LIMIT``)."""
    import os

    try:
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config
    except ImportError:
        return
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
    inductor_config.conv_1x1_as_mm = True
    _raise_recompile_limit(dynamo_config)


def _raise_recompile_limit(dynamo_config) -> None:
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))


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
            try:
                stack.enter_context(sdpa_kernel(order, set_priority=True))
            except TypeError:  # a torch without backend priorities: at least enable them all
                stack.enter_context(sdpa_kernel(order))
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
