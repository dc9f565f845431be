"""Request dataclasses of the panorama tasks beyond text-to-panorama (``worldgen.backend.GenerateRequest``).

Each validates itself on construction and raises ``UserInputError`` with a one-line fix, so a
backend receives only requests that make sense. Arrays are numpy, channels last: images (H, W, 3)
float32 in [0, 1], modalities (H, W, C) in their plugin's value range, masks (H, W) bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import UserInputError
from ..validation import check, check_optional, check_prompt, check_seed, check_size, check_span

METHODS = ("auto", "masked", "blend")
KEEP_CHOICES = (None, "image", "modality")
EDIT_LAYERS = ("both", "image", "modality")


def _check_prompt_optional(prompt: Optional[str], label: str = "the prompt") -> str:
    """Conversions and refinement may run without a prompt (then without guidance)."""
    return check_prompt(prompt, required=False, label=label)


@dataclass
class TaskOptions:
    """What every diffusion task shares. ``method``: how known content conditions the model:
    "masked" uses an inpainting checkpoint's mask + masked-latent input (an error without one),
    "blend" re-noises the known part into the latent every step, "auto" picks masked when the
    model has it (both always blend; masked adds the model's own conditioning)."""

    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 50
    guidance: float = 7.5
    seed: int = 0
    scheduler: Optional[str] = None
    method: str = "auto"

    def __post_init__(self) -> None:
        self.prompt = _check_prompt_optional(self.prompt)
        self.negative_prompt = _check_prompt_optional(self.negative_prompt, "the negative prompt")
        self.steps = check("steps", self.steps)
        self.guidance = check("guidance", self.guidance)
        self.seed = check_seed(self.seed)
        if self.method not in METHODS:
            raise UserInputError(f"method {self.method!r} is not one of {', '.join(METHODS)}")


@dataclass
class RefineRequest(TaskOptions):
    """SDEdit refinement/upsampling: resize (RGB Lanczos, modality nearest) by ``scale`` or to
    ``width`` x ``height``, then denoise from ``strength`` over 2-D tiles. ``keep`` names a layer
    copied unchanged into the result (the other is refined conditioned on it)."""

    scale: float = 2.0
    strength: float = 0.4
    keep: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.strength = check("strength", self.strength)
        if self.keep not in KEEP_CHOICES:
            raise UserInputError(f"keep {self.keep!r} must be 'image' or 'modality' (or nothing)")
        self.scale = check("scale", self.scale)
        if (self.width is None) != (self.height is None):
            raise UserInputError("give both width and height, or neither (then --scale sets the size)")

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        if self.width is not None:
            size = (self.width, self.height)
        else:
            size = (int(round(width * self.scale)), int(round(height * self.scale)))
            if size[0] % 8 or size[1] % 8:
                raise UserInputError(f"scale {self.scale} turns {width}x{height} into {size[0]}x{size[1]}, not a "
                                     f"multiple of 8; pick a scale such as 2, or give --size")
        check_size(*size, what="refined size")
        return size


@dataclass
class OutpaintRequest(TaskOptions):
    """Place the known layers into a wider (``span_deg``) and/or taller (``height``) canvas and
    generate the rest. ``x`` is the known part's first column in the new canvas (None: centred);
    vertically it is always centred, which keeps the horizon where the projection puts it."""

    span_deg: Optional[float] = None
    height: Optional[int] = None
    x: Optional[int] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.span_deg is not None:
            self.span_deg = check_span(self.span_deg)
        self.height = check_optional("pixels", self.height, "height")
        if self.height is not None and (self.height <= 0 or self.height % 8):
            raise UserInputError(f"height {self.height} must be a positive multiple of 8")
        self.x = check_optional("pixels", self.x, "x")

    def canvas(self, width: int, height: int, span_deg: float) -> tuple[int, int, int, int, float]:
        """(new width, new height, x, y, new span) for known layers of ``width`` x ``height`` px
        covering ``span_deg``. The width grows with the span at the same pixels per degree (rounded
        to a multiple of 8); the height defaults to the known height rounded up to a multiple of 8."""
        span = self.span_deg or span_deg
        if span < span_deg:
            raise UserInputError(f"span {span:g} is narrower than the {span_deg:g} degrees already there; "
                                 f"outpainting only extends (pass a wider --span)")
        new_width = width if span == span_deg else max(width, _round8(width * span / span_deg))
        new_height = self.height or -(-height // 8) * 8
        if new_height < height:
            raise UserInputError(f"height {new_height} is lower than the {height} px already there; "
                                 f"outpainting only extends (pass a taller --height)")
        if (new_width, new_height) == (width, height):
            raise UserInputError("nothing to outpaint: the canvas would not grow; pass a wider --span or a taller --height")
        check_size(new_width, new_height, what="outpainted size")
        x = self.x if self.x is not None else ((new_width - width) // 2) // 8 * 8
        if x + width > new_width:
            raise UserInputError(f"the known part ({width} px wide at x={x}) does not fit in {new_width} px; lower --x")
        # Vertically centred: the horizon stays on the middle row, where the projection puts it.
        return new_width, new_height, x, (new_height - height) // 2, span


def _round8(value: float) -> int:
    return max(8, int(round(value / 8.0)) * 8)


@dataclass
class EstimateRequest(TaskOptions):
    """RGB -> modality: the image is kept as it is, the modality is generated for it."""

    image: Optional[np.ndarray] = None
    span_deg: float = 360.0
    modality: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image is None or self.image.ndim != 3 or self.image.shape[-1] != 3:
            raise UserInputError("estimate needs an RGB image (H, W, 3); give an image file")
        h, w = self.image.shape[:2]
        check_size(w, h, what="image")
        self.span_deg = check_span(self.span_deg)


@dataclass
class PaintRequest(TaskOptions):
    """Modality -> RGB: the snapshot's modality is kept, a new image is painted onto it."""


@dataclass
class EditRequest(TaskOptions):
    """Regenerate the region where ``mask`` is True, in ``layers`` (both, or one conditioned on the
    other). ``strength`` < 1 starts from the current content in the region (SDEdit) instead of noise."""

    mask: Optional[np.ndarray] = None
    layers: str = "both"
    strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask is None or self.mask.ndim != 2:
            raise UserInputError("edit needs a mask image (white = change, black = keep)")
        self.mask = np.asarray(self.mask, dtype=bool)
        if not self.mask.any():
            raise UserInputError("the mask is all black, so there is nothing to edit; paint the region white")
        if self.layers not in EDIT_LAYERS:
            raise UserInputError(f"layers {self.layers!r} must be one of {', '.join(EDIT_LAYERS)}")
        self.strength = check("strength", self.strength)

    def check_fits(self, width: int, height: int) -> None:
        """The mask must cover the scene pixel for pixel (no silent resampling of a region)."""
        mh, mw = self.mask.shape
        if (mw, mh) != (width, height):
            raise UserInputError(f"the mask is {mw}x{mh} but the scene is {width}x{height}; "
                                 f"resize the mask to {width}x{height}")
