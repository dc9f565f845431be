"""One tiled JointNet run, as the backend's tasks describe it: a canvas, what is known on it, and how
to start. Every task (generate, refine, outpaint, estimate, paint, edit) is one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TiledJob:
    """One tiled run: a canvas, its known content, and how to start.

    ``image``/``modality`` are the known layers on the canvas (None: nothing known); ``keep_*`` are
    (H, W) bool masks of pixels that are known and must come out unchanged; ``strength`` < 1 starts
    from the encoded layers (SDEdit) instead of noise."""

    width: int
    height: int
    span_deg: float
    image: Any = None
    modality: Any = None
    keep_image: Any = None
    keep_modality: Any = None
    strength: float = 1.0
    whole_window: bool = True
    geometry: dict = field(default_factory=dict)
    regions: Any = None  # list of worldgen.geometry.regions.Region: their prompts condition their parts
