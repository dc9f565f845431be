"""What the image exporters (equirect, cubemap) share: RGBA PNGs of looked-up rays, and a distance
preview on the log scale of the depth modality's previews."""

from __future__ import annotations

import io

import numpy as np


def rgba_png(color: np.ndarray, known: np.ndarray) -> bytes:
    """PNG of colours in [0, 1]; RGBA with transparent unknown pixels when any are unknown, else RGB."""
    from PIL import Image

    rgb = (np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if not known.all():
        rgb = np.concatenate([rgb, (known.astype(np.uint8) * 255)[..., None]], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def distance_preview_png(distance: np.ndarray, known: np.ndarray) -> bytes:
    """A Turbo preview of distances (near red, far blue, log scale; sky darkest; unknown transparent)."""
    from worldgen.plugins.colormap import turbo
    from worldgen.plugins.depth_scale import log_scale

    with np.errstate(divide="ignore"):
        disparity = np.where(known & np.isfinite(distance), 1.0 / np.maximum(np.nan_to_num(distance, nan=1.0), 1e-9), 0.0)
    return rgba_png(turbo(log_scale(disparity)).astype(np.float32) / 255.0, known)
