"""Speed settings for running the tiled sampler's models on a GPU (memory planning: ``memory.py``;
the CUDA-graph recorder: ``graphs.py``). Measured in ``benchmarks/NOTES.md``:

- ``SpeedSettings`` / ``speed_up``: kernel and launch choices that make a latent-diffusion UNet
  faster without changing what it computes: fused QKV projections (diffusers' own
  ``fuse_qkv_projections``), cuDNN autotuning, cuDNN attention first in SDPA's order, and one CUDA
  graph per window-batch shape (``GraphedCall``). ``speed="compile"`` adds a static-shape
  ``torch.compile`` of the UNet blocks (``CompiledBlocks``, eager fallback, kept on disk by
  ``compile_cache_dir``) in channels-last under the same CUDA graphs: -24% on the published recipe
  on an H200, but about 110 s of compile the first time on a machine and 20 s per process after,
  so it is opt-in (benchmarks/NOTES.md, issue 14).

Nothing here changes results beyond float rounding: ``tests/sampler/perf`` and ``tests/gpu`` compare each fast path with the
plain one on a tiny model. This module imports torch lazily, so importing it stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional

from .graphs import GraphedCall

logger = logging.getLogger(__name__)


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
    def for_device(cls, device, resident: bool = True) -> "SpeedSettings":
        """What measured fastest on CUDA (benchmarks/NOTES.md): fused QKV, cuDNN autotuning, cuDNN
        attention first, CUDA graphs; bf16 comes from the backend's dtype. Nothing elsewhere, where
        these choices are untested or slower. Compile is opt-in ("compile"): it pays in a process
        that makes several panoramas, not in a one-shot one (benchmarks/NOTES.md).

        ``resident`` False (a process that makes one world, `worldgen pano`): no cuDNN autotuning
        and no CUDA graphs, whose first-call costs (issue 24: 12.7 s first world with both, 3.4 s
        without) a one-shot process can never win back; results are the same either way."""
        import torch

        device = torch.device(device)
        if device.type != "cuda":
            return cls()
        return cls(fuse_qkv=True, cudnn_benchmark=resident, attention="cudnn", cuda_graphs=resident)

    @classmethod
    def named(cls, name, device, resident: bool = True) -> "SpeedSettings":
        """"auto" (or None): ``for_device``; "eager": the same without CUDA graphs; "compile": with
        the UNet blocks compiled (static shapes, channels-last) under the CUDA graphs, where Triton
        works; "off": plain PyTorch. A SpeedSettings passes through. ``resident``: see ``for_device``
        (a named "compile" still compiles in a one-shot process: the user asked for it)."""
        from ..errors import UserInputError

        if isinstance(name, cls):
            return name
        if name in (None, "auto"):
            return cls.for_device(device, resident)
        if name == "eager":
            return replace(cls.for_device(device, resident), cuda_graphs=False)
        if name == "compile":
            # Where Triton cannot run (CPU, MPS, old GPUs, a torch without inductor) "compile" is
            # "auto": the eager path stays the default there. Channels-last only with the compiler:
            # eagerly, GroupNorm and LayerNorm convert layouts themselves and measured slower.
            if not compile_supported(device):
                return cls.for_device(device, resident)
            return replace(cls.for_device(device, resident), compile=True, channels_last=True)
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
    from ..paths import compile_cache_root

    return compile_cache_root()


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
