"""Colour maps for modality previews: a Turbo-style rainbow and plain grey.

matplotlib is not a worldgen dependency, so Turbo is evaluated from its published polynomial
approximation (A. Mikhailov, "Turbo, An Improved Rainbow Colormap for Visualization", Google AI
blog, 2019): each of R, G, B is a degree-5 polynomial in x in [0, 1]. It follows the reference
lookup table closely through the middle and drifts by up to about 0.1 at the two dark ends, which
is fine for a preview; previews are never read back as data.
"""

from __future__ import annotations

import numpy as np

# Coefficients of x**0 .. x**5 for each channel (the published approximation's numbers).
_TURBO_COEFFS = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],  # red
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],  # green
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],  # blue
    ],
    dtype=np.float64,
)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def turbo(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to uint8 RGB of shape ``values.shape + (3,)``: 0 is dark
    blue, 0.5 green, 1 dark red. Out-of-range and non-finite values are clamped (NaN -> 0)."""
    x = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    x = np.clip(x, 0.0, 1.0)
    # Horner's rule on all three channels at once; coefficients go highest power first.
    rgb = np.zeros(x.shape + (3,), dtype=np.float64)
    for power in range(_TURBO_COEFFS.shape[1] - 1, -1, -1):
        rgb = rgb * x[..., None] + _TURBO_COEFFS[:, power]
    return _to_uint8(rgb)


def grey(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to uint8 grey RGB of shape ``values.shape + (3,)``."""
    x = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return _to_uint8(np.repeat(x[..., None], 3, axis=-1))
