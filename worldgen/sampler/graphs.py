"""CUDA graphs for the tiled sampler's model calls: one recorded graph per input signature.

Nothing here changes results beyond float rounding (``tests/sampler/perf`` compares the graphed call
with the plain one). Imports torch lazily, so importing it stays cheap.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

logger = logging.getLogger(__name__)


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
