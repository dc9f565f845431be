"""Numerical-fault guard: find NaN/inf per step, redo a half-precision step in float32, or stop with advice.

Half precision (float16 especially) overflows where float32 does not: a large activation becomes inf,
and one inf turns the whole latent into NaN a step later. Checking every step's output costs one
reduction; the guard below runs a step, and if its output is not finite and the step ran in a reduced
precision it runs the same step again in float32. A fault that float32 also produces (or one in a
float32 run) is not a precision problem, so it stops the run with a ``NumericalError`` naming what to
change, instead of writing a black or NaN result.

Typical use (the caller decides what "run in dtype" means: cast inputs, autocast, or cast a module)::

    guard = PrecisionGuard("denoising step", dtype=torch.float16, advice=SAMPLING_ADVICE)
    for t in timesteps:
        eps = guard.run(lambda dtype: predict(latents.to(dtype), t, dtype))

Randomness: by default the guard restores torch's CPU (and initialised CUDA) RNG state before a redo,
so a step that draws noise draws the same noise again and a redone step differs from the first
attempt only in precision. This module imports torch lazily: importing it stays cheap.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Optional, TypeVar

from .errors import ModelError

T = TypeVar("T")

SAMPLING_ADVICE = "rerun with --dtype float32 (or bfloat16 on GPUs that have it), or a lower --guidance"
TRAINING_ADVICE = ("lower --lr, use --mixed-precision bf16 (or no), or go back to an earlier checkpoint "
                   "with --resume after deleting the newer ones")
DEFAULT_ADVICE = "rerun in float32 (--dtype float32)"
# After this many redone steps the guard stays in float32: retrying half precision every step would
# double the cost of each step for nothing.
STICKY_AFTER = 3


class NumericalError(ModelError):
    """A computation produced NaN or infinite values that float32 does not fix."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def all_finite(value: Any) -> bool:
    """True if every number in ``value`` is finite.

    ``value`` may be a torch tensor, a numpy array, a Python number, None (ignored), or a tuple,
    list or dict of those (model outputs often are), or an object with a tensor ``sample``
    attribute (diffusers outputs). Integer and boolean tensors are always finite.
    """
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(all_finite(v) for v in value)
    module = type(value).__module__ or ""
    if module.startswith("torch"):
        import torch

        if isinstance(value, torch.Tensor):
            if not (value.is_floating_point() or value.is_complex()):
                return True
            return bool(torch.isfinite(value).all().item())
    if module.startswith("numpy"):
        import numpy as np

        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.inexact):
            return True
        return bool(np.isfinite(array).all())
    sample = getattr(value, "sample", None)
    if sample is not None and sample is not value:
        return all_finite(sample)
    return True  # not numbers: nothing that can overflow


def check_finite(value: T, where: str, advice: str = DEFAULT_ADVICE) -> T:
    """Return ``value`` if it is all finite, else raise ``NumericalError`` (one line: what, then the fix)."""
    if not all_finite(value):
        raise NumericalError(_one_line(f"{where} produced NaN or infinite values; {advice}"))
    return value


def is_reduced_precision(dtype: Any) -> bool:
    """float16 and bfloat16 (torch dtypes or their names) are the precisions a float32 redo can help."""
    name = str(dtype).replace("torch.", "")
    return name in ("float16", "half", "bfloat16")


@contextlib.contextmanager
def float32_modules(*modules) -> Iterator[None]:
    """Run a block with ``modules`` in float32, then give every parameter and buffer back its original
    tensor (kept aside meanwhile), so the weights come out bit for bit as they went in."""
    import torch

    saved = []
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                saved.append((tensor, tensor.data))
                tensor.data = tensor.data.to(torch.float32)
    try:
        yield
    finally:
        for tensor, original in saved:
            tensor.data = original


class _RngState:
    """torch's CPU RNG state and, when CUDA is initialised, every GPU's, to replay a step's draws."""

    def __init__(self) -> None:
        import torch

        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    def restore(self) -> None:
        import torch

        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class PrecisionGuard:
    """Checks each step's output and redoes faulty reduced-precision steps in float32.

    ``run(step)`` calls ``step(dtype)`` with the guard's current dtype. If the result holds NaN or
    inf and that dtype is float16/bfloat16, ``step(torch.float32)`` runs again (with the RNG state of
    the first attempt when ``replay_rng``); after ``sticky_after`` such redos every later step runs
    in float32 directly. If the float32 result is not finite either, or the guard already ran in
    float32, ``NumericalError`` stops the run with ``advice``.
    ``redos`` counts the redone steps, ``steps`` the steps run; ``dtype`` is the current dtype.
    """

    def __init__(self, where: str, dtype: Any, advice: str = DEFAULT_ADVICE, *,
                 sticky_after: Optional[int] = STICKY_AFTER, replay_rng: bool = True) -> None:
        self.where = where
        self.dtype = dtype
        self.advice = advice
        self.sticky_after = sticky_after
        self.replay_rng = replay_rng
        self.redos = 0
        self.steps = 0

    def run(self, step: Callable[[Any], T]) -> T:
        import torch

        self.steps += 1
        rng = _RngState() if self.replay_rng and is_reduced_precision(self.dtype) else None
        result = step(self.dtype)
        if all_finite(result):
            return result
        first = str(self.dtype).replace("torch.", "")
        if not is_reduced_precision(self.dtype):
            raise NumericalError(_one_line(f"{self.where} (step {self.steps}) produced NaN or infinite values "
                                           f"in {first}; {self.advice}"))
        if rng is not None:
            rng.restore()
        result = step(torch.float32)
        self.redos += 1
        if not all_finite(result):
            raise NumericalError(_one_line(f"{self.where} (step {self.steps}) produced NaN or infinite values in "
                                           f"{first} and again in float32; {self.advice}"))
        if self.sticky_after is not None and self.redos >= self.sticky_after:
            self.dtype = torch.float32
        return result


def redo_in_float32(step: Callable[[Any], T], dtype: Any, where: str, advice: str = DEFAULT_ADVICE) -> T:
    """One guarded step: ``step(dtype)``, redone as ``step(torch.float32)`` if it was not finite."""
    return PrecisionGuard(where, dtype, advice, sticky_after=None).run(step)
