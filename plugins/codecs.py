"""Encoding helpers shared by modality plugins, built-in or third-party.

JointNet passes its second modality through the same RGB VAE as the image, so every modality is
turned into an (H, W, 3) image in [-1, 1] and read back from one. A scalar modality (depth, edges)
is the usual case: rescale its value range to [-1, 1] and repeat it on the three channels; on the
way back take the channel mean (the VAE's three channels disagree slightly) and clip, as the
official JointNet depth checkpoints do.
"""

from __future__ import annotations

import numpy as np

from worldgen.errors import UserInputError


def expect_channels(array: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``array`` as float32 if it is (H, W, channels); a UserInputError naming the fix otherwise."""
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[-1] != channels:
        hint = "add a channel axis with array[..., None]" if arr.ndim == 2 and channels == 1 else "pass channels-last arrays"
        raise UserInputError(f"{what} must be an (H, W, {channels}) array, got shape {arr.shape}; {hint}")
    return arr


def encode_scalar(array: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(H, W, 1) values in ``value_range`` -> (H, W, 3) VAE input in [-1, 1] (values outside are clipped)."""
    lo, hi = value_range
    arr = expect_channels(array, 1, "a single-channel modality")
    unit = (np.clip(np.nan_to_num(arr, nan=lo), lo, hi) - lo) / (hi - lo)
    return np.repeat(unit * 2.0 - 1.0, 3, axis=-1).astype(np.float32)


def decode_scalar(image: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(H, W, 3) VAE output in [-1, 1] -> (H, W, 1) values in ``value_range`` (channel mean, clipped)."""
    lo, hi = value_range
    img = expect_channels(image, 3, "a decoded VAE image")
    unit = np.clip((np.nan_to_num(img.mean(axis=-1, keepdims=True)) + 1.0) / 2.0, 0.0, 1.0)
    return (lo + unit * (hi - lo)).astype(np.float32)
