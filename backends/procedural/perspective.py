"""Pinhole views of a world, resampled from an angular grid rendered over the view's extent."""

from __future__ import annotations

import numpy as np

from .render import Frame, View, render


def _rays(yaw_deg, pitch_deg, fov_deg, width, height):
    """(H, W) azimuth and elevation (radians) of each pinhole pixel's ray."""
    f = width / 2 / np.tan(np.radians(fov_deg) / 2)
    u = (np.arange(width) + 0.5 - width / 2) / f
    v = (height / 2 - np.arange(height) - 0.5) / f
    uu, vv = np.meshgrid(u, v)
    pitch, yaw = np.radians(pitch_deg), np.radians(yaw_deg)
    # camera frame: forward (0, 1, 0) tilted up by pitch, then turned by yaw about z
    fy = np.cos(pitch) - vv * np.sin(pitch)
    fz = np.sin(pitch) + vv * np.cos(pitch)
    x = uu * np.cos(yaw) + fy * np.sin(yaw)
    y = -uu * np.sin(yaw) + fy * np.cos(yaw)
    return np.arctan2(x, y), np.arctan2(fz, np.hypot(x, y))


def perspective(world, eye, yaw_deg, pitch_deg, fov_deg, width, height) -> Frame:
    az, el = _rays(yaw_deg, pitch_deg, fov_deg, width, height)
    step = np.radians(fov_deg) / width * 0.75  # a little finer than the view's own pixels
    pole = abs(pitch_deg) + np.degrees(np.abs(el - np.radians(pitch_deg)).max()) >= 89.0
    centre = np.radians(yaw_deg)
    rel = (az - centre + np.pi) % (2 * np.pi) - np.pi
    lo, hi = (-np.pi, np.pi) if pole else (rel.min() - 2 * step, rel.max() + 2 * step)
    cols = int(np.ceil((hi - lo) / step))
    top, bottom = min(el.max() + 2 * step, np.pi / 2 - 1e-4), max(el.min() - 2 * step, -np.pi / 2 + 1e-4)
    rows = int(np.ceil((top - bottom) / step)) + 1
    els = np.linspace(top, bottom, rows)
    view = View(eye, centre + lo, (hi - lo) / cols, cols, np.tan(els), pole)
    grid = render(world, view)
    fc = ((rel - lo) / view.daz - 0.5)
    fr = (top - el) / (top - bottom) * (rows - 1)
    return Frame(rgb=_bilinear(grid.rgb, fr, fc, pole), distance=_nearest(grid.distance, fr, fc),
                 kind=_nearest(grid.kind, fr, fc))


def _bilinear(image, fr, fc, wraps):
    h, w = image.shape[:2]
    r0 = np.clip(np.floor(fr).astype(int), 0, h - 2)
    c0 = np.floor(fc).astype(int)
    a, b = (fr - r0)[..., None], (fc - c0)[..., None]
    c1 = (c0 + 1) % w if wraps else np.clip(c0 + 1, 0, w - 1)
    c0 = c0 % w if wraps else np.clip(c0, 0, w - 1)
    top = image[r0, c0] * (1 - b) + image[r0, c1] * b
    bottom = image[r0 + 1, c0] * (1 - b) + image[r0 + 1, c1] * b
    return (top * (1 - a) + bottom * a).astype(np.float32)


def _nearest(layer, fr, fc):
    h, w = layer.shape[:2]
    return layer[np.clip(np.rint(fr).astype(int), 0, h - 1), np.rint(fc).astype(int) % w]
