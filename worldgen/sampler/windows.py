"""Window layouts over a latent (or pixel) canvas, and the weights that blend overlapping windows.

A ``Layout`` is a set of equally sized windows covering a canvas. On a circular canvas (a full
360-degree panorama) windows may run past the right edge and continue at the left one, so the
wrap is just another overlap. Each window carries a weight map that falls linearly towards its
edges, except on sides that touch a non-circular canvas border (nothing there to blend with).

The same layout serves the denoising loop (latent windows) and the tiled VAE (latent tiles in,
pixel tiles out): ``index(scale)`` and ``weights(scale)`` give the windows at a finer resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    """A window's top-left corner and size in canvas units; ``x`` may pass the right edge when the
    canvas is circular (columns are then taken modulo the canvas width)."""

    x: int
    y: int
    width: int
    height: int


def axis_starts(length: int, window: int, stride: int, offset: int, circular: bool) -> list[int]:
    """Start positions of windows along one axis, covering all of ``[0, length)``.

    Circular: ``ceil(length / stride)`` windows at ``offset + k * stride`` (mod ``length``); a window
    as long as the axis becomes one window starting at ``offset`` (a roll). Not circular: a grid
    shifted by ``offset`` and clamped into the canvas, so the first window starts at 0 and the last
    ends at ``length``.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window {window} and stride {stride} must be positive")
    if stride > window:
        raise ValueError(f"stride {stride} exceeds window {window}; the windows would leave gaps")
    if circular:
        if window >= length:
            return [offset % length]
        return [(offset + k * stride) % length for k in range(math.ceil(length / stride))]
    if window >= length:
        return [0]
    offset %= stride
    last = length - window
    starts = {min(max(offset + k * stride, 0), last) for k in range(-1, math.ceil(length / stride) + 1)}
    return sorted(starts)


def edge_ramp(size: int, ramp: int, taper_start: bool, taper_end: bool) -> torch.Tensor:
    """1-D weights: 1 inside, falling linearly over ``ramp`` cells towards each tapered end.

    Cell centres are used ((i + 0.5) / ramp), so the outermost cell keeps a small positive weight:
    every covered cell has a non-zero weight sum even where only window edges reach it.
    """
    i = torch.arange(size, dtype=torch.float32) + 0.5
    w = torch.ones(size)
    if ramp > 0:
        if taper_start:
            w = torch.minimum(w, i / ramp)
        if taper_end:
            w = torch.minimum(w, (size - i) / ramp)
    return w


@dataclass(frozen=True)
class Layout:
    """Equally sized windows over a ``width`` x ``height`` canvas."""

    width: int
    height: int
    windows: tuple[Window, ...]
    circular: bool
    ramp: int

    @property
    def window_size(self) -> tuple[int, int]:
        first = self.windows[0]
        return first.width, first.height

    def __len__(self) -> int:
        return len(self.windows)

    def index(self, scale: int = 1, device=None) -> torch.Tensor:
        """Flat indices (n, h*scale, w*scale) of each window's cells in a canvas ``scale`` times finer,
        flattened row-major: ``canvas.flatten(-2)[..., index]`` gathers the windows."""
        W, H = self.width * scale, self.height * scale
        rows, cols = [], []
        for win in self.windows:
            rows.append(torch.arange(win.y * scale, (win.y + win.height) * scale))
            cols.append(torch.arange(win.x * scale, (win.x + win.width) * scale) % W)
        r = torch.stack(rows)
        c = torch.stack(cols)
        if r.max() >= H:
            raise ValueError("a window runs past the bottom of the canvas")
        return (r[:, :, None] * W + c[:, None, :]).to(device)

    def weights(self, scale: int = 1, device=None) -> torch.Tensor:
        """Blend weights (n, 1, h*scale, w*scale): linear ramps at window edges, none at the
        border of a non-circular canvas."""
        out = []
        for win in self.windows:
            wx = edge_ramp(win.width * scale, self.ramp * scale,
                           taper_start=self.circular or win.x > 0,
                           taper_end=self.circular or win.x + win.width < self.width)
            wy = edge_ramp(win.height * scale, self.ramp * scale,
                           taper_start=win.y > 0, taper_end=win.y + win.height < self.height)
            out.append(wy[:, None] * wx[None, :])
        return torch.stack(out)[:, None].to(device)


def tile_layout(width: int, height: int, window: tuple[int, int], stride: tuple[int, int], *,
                circular: bool, offset: tuple[int, int] = (0, 0), ramp: int | None = None) -> Layout:
    """Windows of ``window`` = (w, h) cells (clamped to the canvas) every ``stride`` = (sx, sy) cells.

    ``circular`` wraps in x only: a panorama is a cylinder, never a torus. ``ramp`` is the width of
    the linear fall-off at window edges; by default an eighth of the window (8 latents for 64).
    """
    win_w, win_h = min(window[0], width), min(window[1], height)
    stride_x, stride_y = min(stride[0], win_w), min(stride[1], win_h)
    if ramp is None:
        ramp = max(1, min(window) // 8)
    xs = axis_starts(width, win_w, stride_x, offset[0], circular)
    ys = axis_starts(height, win_h, stride_y, offset[1], circular=False)
    windows = tuple(Window(x, y, win_w, win_h) for y in ys for x in xs)
    return Layout(width=width, height=height, windows=windows, circular=circular, ramp=ramp)


def gather(canvas: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Windows of a (B, C, H, W) canvas as a (n * B, C, h, w) batch (window-major order)."""
    b, c = canvas.shape[:2]
    n, h, w = index.shape
    crops = canvas.flatten(-2)[:, :, index.reshape(-1)].reshape(b, c, n, h, w)
    return crops.permute(2, 0, 1, 3, 4).reshape(n * b, c, h, w)


def scatter_add(canvas: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    """Add a (n * B, C, h, w) batch of windows (as ``gather`` orders them) into a (B, C, H, W) canvas."""
    b, c = canvas.shape[:2]
    n = index.shape[0]
    vals = values.reshape(n, b, -1, *values.shape[-2:]).expand(n, b, c, *values.shape[-2:])
    vals = vals.permute(1, 2, 0, 3, 4).reshape(b, c, -1)
    flat = canvas.view(b, c, -1)
    flat.index_add_(2, index.reshape(-1), vals.to(flat.dtype))
