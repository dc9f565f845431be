"""Pixel-space layer operations the panorama tasks share: resizing, placing into a larger canvas,
and turning pixel masks into latent masks. numpy in, numpy out (except the latent mask)."""

from __future__ import annotations

import numpy as np

WRAP_PAD_PX = 8  # columns borrowed from the other end when resizing a 360-degree panorama


def resize_lanczos(image: np.ndarray, width: int, height: int, wrap: bool) -> np.ndarray:
    """(H, W, C) float image -> (height, width, C) with a Lanczos filter, per channel in float.

    With ``wrap`` the filter sees the panorama's other end beyond each side (the image is padded
    circularly first), so the first and last columns are filtered like any other pair of columns."""
    from PIL import Image

    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.astype(np.float32, copy=True)
    pad = WRAP_PAD_PX if wrap and w > 2 * WRAP_PAD_PX and (WRAP_PAD_PX * width) % w == 0 else 0
    out_pad = pad * width // w
    src = np.concatenate([image[:, w - pad:], image, image[:, :pad]], axis=1) if pad else image
    channels = []
    for c in range(src.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(src[..., c], dtype=np.float32), mode="F")
        plane = plane.resize((width + 2 * out_pad, height), Image.Resampling.LANCZOS)
        channels.append(np.asarray(plane, dtype=np.float32))
    out = np.stack(channels, axis=-1)
    return out[:, out_pad: out_pad + width] if out_pad else out


def resize_nearest(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, C) -> (height, width, C) by nearest neighbour (keeps modality values unmixed)."""
    h, w = array.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return array[rows][:, cols].astype(np.float32, copy=True)


def place(array: np.ndarray, width: int, height: int, x: int, y: int) -> np.ndarray:
    """``array`` (h, w, C) pasted at (x, y) into a zero canvas (height, width, C)."""
    h, w = array.shape[:2]
    canvas = np.zeros((height, width, array.shape[-1]), dtype=np.float32)
    canvas[y:y + h, x:x + w] = array
    return canvas


def region(width: int, height: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    """A (height, width) bool mask that is True on the rectangle."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return mask


def latent_keep(keep: np.ndarray, factor: int):
    """(H, W) bool pixel keep-mask -> (1, 1, H/f, W/f) float tensor: a latent cell counts as kept
    only if every pixel under it is (min-pooling), so generated cells never pretend to be known."""
    import torch
    import torch.nn.functional as F

    mask = torch.from_numpy(np.ascontiguousarray(keep, dtype=np.float32))[None, None]
    return -F.max_pool2d(-mask, factor) if factor > 1 else mask
