"""``edges``: a modality worldgen does not ship, packaged the way any third party would.

The value is the Sobel gradient magnitude of the image's luminance, normalised per image to
[0, 1] (the edge-map condition of DiffX-style multi-modal diffusion). It means nothing in 3D, so
its geometric role is "none"; its estimator needs no weights, which makes it the modality the
training tests use.
"""

from __future__ import annotations

import numpy as np

from worldgen.plugins.codecs import decode_scalar, encode_scalar, expect_channels
from worldgen.plugins.colormap import grey
from worldgen.specs import ModalitySpec

# ITU-R BT.709 luma weights: edges follow perceived brightness, not one colour channel.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)


def estimate(rgb: np.ndarray, wrap: bool = False) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (H, W, 1) edge strength in [0, 1].

    ``wrap=True`` treats the left and right borders as neighbours (a 360-degree panorama), so the
    seam shows no false edge.
    """
    from scipy import ndimage

    luma = expect_channels(rgb, 3, "the RGB image").astype(np.float64) @ LUMA
    x_mode = "wrap" if wrap else "nearest"
    gx = ndimage.sobel(luma, axis=1, mode=["nearest", x_mode])
    gy = ndimage.sobel(luma, axis=0, mode=["nearest", x_mode])
    magnitude = np.hypot(gx, gy)
    peak = magnitude.max()
    if peak <= 1e-12:  # a flat image has no edges; avoid dividing by zero
        return np.zeros(luma.shape + (1,), dtype=np.float32)
    return (magnitude / peak).astype(np.float32)[..., None]


def preview(edges: np.ndarray) -> np.ndarray:
    """(H, W, 1) edges -> (H, W, 3) uint8 grey image (white = strong edge)."""
    return grey(expect_channels(edges, 1, "edges")[..., 0])


SPEC = ModalitySpec(
    name="edges",
    channels=1,
    value_range=(0.0, 1.0),
    meaning="Sobel gradient magnitude of the image's luminance, normalised per image to [0, 1]",
    geometry="none",
    encode=encode_scalar,
    decode=decode_scalar,
    preview=preview,
    estimator=estimate,
)
