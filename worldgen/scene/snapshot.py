"""In-memory scene content: what backends produce and exporters consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..geometry.projection import CylindricalProjection


@dataclass
class Snapshot:
    """One version of a scene's layers.

    ``image`` is (H, W, 3) float32 in [0, 1]. ``modalities`` maps a modality name to its
    (H, W, C) float32 array in that modality's value range (for ``depth``: disparity in [0, 1],
    near = 1). ``geometry`` holds what turns the modality into metres, e.g. ``disparity_scale``,
    ``disparity_shift``, ``near``, ``far`` (see ``worldgen.geometry.world``).
    """

    image: np.ndarray
    modalities: dict[str, np.ndarray]
    projection: CylindricalProjection
    geometry: dict = field(default_factory=dict)
    prompt: str = ""
    # Beside the band (worldgen.scene.extra_layers): the full sphere and the background behind depth cuts.
    sphere: Optional[Any] = None
    background: Optional[Any] = None

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        if (w, h) != (self.projection.width, self.projection.height):
            raise ValueError(f"image is {w}x{h} but the projection says {self.projection.width}x{self.projection.height}")
        for name, arr in self.modalities.items():
            if arr.ndim != 3 or arr.shape[:2] != (h, w):
                raise ValueError(f"modality {name} has shape {arr.shape}, expected ({h}, {w}, C)")

    @property
    def size(self) -> tuple[int, int]:
        return self.projection.width, self.projection.height
