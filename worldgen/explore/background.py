"""``worldgen layers``: what lies behind the foreground, as background layers of the version.

Generic path (any backend with ``edit``): find the band's depth cuts (``reproject.cuts``), grow a
mask from each cut's near side into the foreground (as far as the parallax of a few metres off the
eye can reveal, and never past the foreground's own far edge), and inpaint the masked pixels
jointly in RGB and depth: the model sees the background around the hole and fills in the surface
the foreground hides. The inpainted depth is kept behind the foreground (at least ``1 + threshold``
times its distance), and the foreground's own pixels never enter the layer: it holds only what the
model painted there. A backend that knows its world (procedural) offers ``layers`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import UserInputError
from ..scene.extra_layers import BackgroundLayers
from ..progress import report
from .inpaint import InpaintSettings, depth_modality, inpaint, offers, view_snapshot

CUT_THRESHOLD = 0.1  # as the GLB's default cut_threshold: a 10 % jump in distance is a cut


@dataclass
class LayersRequest(InpaintSettings):
    """The mask behind each cut is as wide as the background a ``move``-metre step off the eye can
    reveal there (its parallax), at most ``radius`` pixels (0: 1/32 of the width)."""

    radius: int = 0
    threshold: float = CUT_THRESHOLD
    move: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= int(self.radius) <= 512:
            raise UserInputError(f"radius {self.radius} must be between 0 and 512 pixels")
        if not 0 < self.move <= 100:
            raise UserInputError(f"move {self.move} must be between 0 and 100 metres off the eye")
        if not 0 < self.threshold < 10:
            raise UserInputError(f"threshold {self.threshold} must be between 0 and 10 (0.1 = a 10 % jump)")


def complete_layers(backend, snapshot, request: LayersRequest, progress=None):
    if offers(backend, "layers"):
        return backend.layers(request, snapshot, progress)
    return inpaint_layers(backend, snapshot, request, progress)


def hidden_mask(snapshot, request: LayersRequest):
    """(mask, world): the foreground pixels behind which a background is to be inpainted."""
    from ..geometry.world import build_world
    from ..reproject.cuts import cut_edges, grow_behind, near_sides, reveal_radius

    world = build_world(snapshot)
    distance = world.distance  # sky pixels sit at far: the sky hides nothing and is hidden by the wall tops
    across, down = cut_edges(distance, request.threshold, world.wraps)
    near, behind = near_sides(distance, across, down)
    largest = int(request.radius) or max(2, snapshot.projection.width // 32)
    radius = reveal_radius(distance, behind, snapshot.projection.focal_px, request.move, largest)
    return grow_behind(distance, near & ~world.sky, behind, radius, request.threshold, world.wraps), world


def inpaint_layers(backend, snapshot, request: LayersRequest, progress=None):
    from ..geometry.world import distance_to_disparity

    modality = depth_modality(backend, "layers")
    if modality not in snapshot.modalities:
        raise UserInputError(f"the scene has no {modality} layer to find depth cuts in; estimate it first "
                             f"(`worldgen convert`)")
    report(progress, "layers", 0, 2, "cuts")
    mask, world = hidden_mask(snapshot, request)
    background = np.zeros_like(snapshot.image), np.zeros_like(snapshot.modalities[modality])
    if mask.any():
        view = view_snapshot(snapshot.image, snapshot.modalities[modality], snapshot.projection.span_deg, modality,
                             snapshot.geometry, snapshot.prompt)
        view.projection = snapshot.projection  # the whole band: a 360-degree one wraps in the sampler
        result = inpaint(backend, view, mask, request, progress=progress)
        # Behind the foreground, by at least the cut threshold (disparity falls with distance).
        limit = distance_to_disparity(world.distance * (1 + request.threshold), world.settings, world.world_scale)
        depth = np.minimum(result.modalities[modality][..., 0], limit)[..., None]
        background = (np.where(mask[..., None], result.image, 0.0).astype(np.float32),
                      np.where(mask[..., None], depth, 0.0).astype(np.float32))
    report(progress, "layers", 2, 2, f"{int(mask.sum())} hidden pixels")
    return replace(snapshot, background=BackgroundLayers(background[0], background[1], mask))
