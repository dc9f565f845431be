"""A reusable check that a ModalitySpec behaves as worldgen expects; for plugin authors' tests.

``check_modality_spec(SPEC)`` validates the fields, then exercises encode, decode and preview on a
small array and raises ``AssertionError`` (so pytest shows it) on the first broken promise:

- encode gives a finite (H, W, 3) image in [-1, 1];
- decode(encode(x)) gives x back (within ``atol``), and still does after the encoded image is
  quantised to 8 bits the way an image would be (within ``quantised_atol``);
- decode of an overshooting, noisy VAE output stays finite and inside ``value_range``;
- preview gives an (H, W, 3) uint8 image.

It returns the measured round-trip errors so a test can report them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _fail(spec, message: str) -> None:
    raise AssertionError(f"modality {getattr(spec, 'name', '?')}: {message}")


def sample_values(spec, height: int = 8, width: int = 12, seed: int = 0) -> np.ndarray:
    """Uniform random (height, width, channels) float32 values inside the spec's value range."""
    lo, hi = spec.value_range
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=(height, width, spec.channels)).astype(np.float32)


def check_modality_spec(spec, sample: Optional[np.ndarray] = None, atol: Optional[float] = None,
                        quantised_atol: Optional[float] = None) -> dict:
    """Check ``spec`` on ``sample`` (default: ``sample_values(spec)``; pass one when not every array
    in the value range is valid, e.g. normals must be unit vectors). Tolerances default to 1e-5 and
    2/255 of the value range. Returns ``{"error": ..., "quantised_error": ...}`` (max abs)."""
    spec.validate()
    lo, hi = spec.value_range
    span = hi - lo
    atol = 1e-5 * span if atol is None else atol
    quantised_atol = 2.0 * span / 255.0 if quantised_atol is None else quantised_atol
    x = sample_values(spec) if sample is None else np.asarray(sample, dtype=np.float32)
    height, width = x.shape[:2]

    encoded = np.asarray(spec.encode(x))
    if encoded.shape != (height, width, 3) or not np.issubdtype(encoded.dtype, np.floating):
        _fail(spec, f"encode gave {encoded.dtype} {encoded.shape}, expected float ({height}, {width}, 3)")
    if not np.isfinite(encoded).all() or encoded.min() < -1.0 - 1e-6 or encoded.max() > 1.0 + 1e-6:
        _fail(spec, "encode must give finite values in [-1, 1]")

    def decoded_error(image: np.ndarray, what: str) -> float:
        out = np.asarray(spec.decode(image))
        if out.shape != (height, width, spec.channels):
            _fail(spec, f"decode of {what} gave {out.shape}, expected ({height}, {width}, {spec.channels})")
        return float(np.abs(out.astype(np.float64) - x).max())

    error = decoded_error(encoded, "encode's output")
    if error > atol:
        _fail(spec, f"decode(encode(x)) is off by {error:.3g} (allowed {atol:.3g})")
    quantised = np.round((encoded + 1.0) / 2.0 * 255.0) / 255.0 * 2.0 - 1.0
    quantised_error = decoded_error(quantised.astype(np.float32), "an 8-bit image")
    if quantised_error > quantised_atol:
        _fail(spec, f"decode of the 8-bit encoded image is off by {quantised_error:.3g} (allowed {quantised_atol:.3g})")

    noisy = encoded * 1.3 + np.random.default_rng(1).normal(0.0, 0.2, encoded.shape)
    out = np.asarray(spec.decode(noisy.astype(np.float32)))
    if not np.isfinite(out).all() or out.min() < lo - 1e-6 or out.max() > hi + 1e-6:
        _fail(spec, f"decode of an overshooting VAE output must stay finite and inside {spec.value_range}")

    shown = np.asarray(spec.preview(x))
    if shown.dtype != np.uint8 or shown.shape != (height, width, 3):
        _fail(spec, f"preview gave {shown.dtype} {shown.shape}, expected uint8 ({height}, {width}, 3)")
    return {"error": error, "quantised_error": quantised_error}
