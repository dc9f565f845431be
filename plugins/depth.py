"""The ``depth`` modality: relative disparity, as the official JointNet checkpoints produce it.

Values are inverse depth in [0, 1] with near = 1 and sky ~ 0 (MiDaS style). For the VAE the map is
repeated on three channels and scaled to [-1, 1]; decoding takes the channel mean and clips to
[0, 1]. Scenes store it losslessly (float32 ``.npy`` plus a 16-bit PNG, see ``worldgen.scene.store``)
and preview it with a Turbo-style colour map (near = red, far = dark blue).

The estimator runs a monocular depth model (DPT / Depth Anything and others that predict relative
inverse depth) through transformers' ``depth-estimation`` pipeline. worldgen ships no weights:
the caller names a model id or a local folder (``worldgen train --estimator-option model=...``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from worldgen.errors import ModelError, UserInputError
from worldgen.specs import ModalitySpec

from .codecs import decode_scalar, encode_scalar, expect_channels
from .colormap import turbo

PREDICTIONS = ("disparity", "depth")


def preview(disparity: np.ndarray) -> np.ndarray:
    """(H, W, 1) disparity -> (H, W, 3) uint8 Turbo image on a log scale (``depth_scale``)."""
    from .depth_scale import log_scale

    return turbo(log_scale(expect_channels(disparity, 1, "depth")[..., 0]))


def _normalise(values: np.ndarray) -> np.ndarray:
    """Stretch one image's prediction to [0, 1]: relative models have no fixed scale or offset."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros_like(values, dtype=np.float32)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if hi - lo <= 1e-12:  # a flat prediction carries no relative depth at all
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((np.where(finite, values, lo) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _load_pipeline(model: Any, device: Any):
    if callable(model):  # an already-built pipeline: the caller keeps it across images
        return model
    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise UserInputError(
            "the depth estimator needs a model: pass model=<Hub id or local folder of a DPT or "
            "Depth Anything checkpoint>, e.g. model=Intel/dpt-hybrid-midas"
        )
    return _pipeline_for(str(model), None if device is None else str(device))


@functools.lru_cache(maxsize=2)
def _pipeline_for(model: str, device: Any):
    """One loaded model per (model, device) in a process: estimating a whole training set through
    ``estimate(rgb, model="...")`` must not reload the weights for every image."""
    from transformers import pipeline

    try:
        return pipeline("depth-estimation", model=model, device=device, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"could not load depth model {str(model)!r} ({first}); pass a local folder holding "
            "config.json, the weights and preprocessor_config.json, or a Hub id reachable from here"
        ) from None


def estimate(rgb: np.ndarray, model: Any = None, device: Any = None, prediction: str = "disparity") -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (H, W, 1) disparity in [0, 1], normalised per image.

    ``model``: a Hub id or local folder for transformers' depth-estimation pipeline, or a pipeline
    already built. A named model is loaded once per process and device, then reused.
    ``prediction``: what the model outputs, ``"disparity"`` (relative inverse depth: DPT, Depth
    Anything) or ``"depth"`` (metric or relative depth, inverted here before normalising).
    """
    if prediction not in PREDICTIONS:
        raise UserInputError(f"prediction={prediction!r} is not known; use one of {', '.join(PREDICTIONS)}")
    image = expect_channels(rgb, 3, "the RGB image")
    height, width = image.shape[:2]
    pipe = _load_pipeline(model, device)

    from PIL import Image

    pil = Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))
    output = pipe(pil)
    raw = output["predicted_depth"] if isinstance(output, dict) else output
    values = _to_hw(raw, height, width)
    if prediction == "depth":
        values = 1.0 / np.maximum(values, 1e-6)
    return _normalise(values)[..., None]


def _to_hw(prediction: Any, height: int, width: int) -> np.ndarray:
    """The model's prediction as a float64 (height, width) array (pipelines may return it at
    model resolution or with a batch axis)."""
    import torch

    tensor = torch.as_tensor(prediction, dtype=torch.float32).detach().cpu()
    while tensor.ndim > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2:
        raise ModelError(f"the depth model returned a prediction of shape {tuple(tensor.shape)}; use a depth-estimation model")
    if tuple(tensor.shape) != (height, width):
        tensor = torch.nn.functional.interpolate(tensor[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return tensor.double().numpy()


SPEC = ModalitySpec(
    name="depth",
    channels=1,
    value_range=(0.0, 1.0),
    meaning="relative disparity (inverse depth), near = 1, sky ~ 0, as in the official JointNet checkpoints",
    geometry="disparity",
    encode=encode_scalar,
    decode=decode_scalar,
    preview=preview,
    estimator=estimate,
)
