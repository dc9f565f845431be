"""``worldgen sphere``: complete a cylindrical band to the full 360 x 180-degree sphere.

Generic path (any backend with ``edit``, JointNet first of all):

1. the band is reprojected into an equirectangular image (colour and metres along each ray);
   the rows it does not reach (the caps) are unknown;
2. for each cap a square perspective view looks straight up (or down), wide enough to reach
   ``overlap_deg`` into the band, so the model sees the band's content around the hole;
3. the view's unknown pixels are inpainted jointly in RGB and depth (``inpaint``); its known
   pixels are the band's and stay as they are;
4. the equirect's unknown pixels take the inpainted views' content; its known pixels are never
   touched, so the band's content is exact in the sphere;
5. whatever the caps cannot reach (a band too narrow for a pinhole cap view, a partial span's
   sides) is tiled with 90-degree views around the horizon and 45 degrees above and below it,
   each inpainted from everything known so far (views that see nothing missing cost nothing).

A backend that can render the sphere directly offers ``sphere(request, snapshot)`` (and lists the
task in its spec); it is asked instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UserInputError
from ..scene.extra_layers import SphereLayers
from ..progress import report
from ..reproject import rays as R
from ..reproject.sample import bilinear, inside, nearest
from ..reproject.sources import BandSource, render_equirect
from .inpaint import InpaintSettings, depth_modality, inpaint, offers, view_snapshot
from .view_depth import from_disparity, to_disparity

MAX_CAP_FOV = 160.0  # degrees: wider pinhole views spend almost all their pixels on the rim


@dataclass
class SphereRequest(InpaintSettings):
    """``width``: the equirect's width (0: the band's 360-degree width); ``view_size``: the square
    cap views' side in pixels (a multiple of 8); ``overlap_deg``: how far each view reaches into the band."""

    width: int = 0
    view_size: int = 512
    overlap_deg: float = 12.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.view_size < 16 or self.view_size % 8:
            raise UserInputError(f"view size {self.view_size} must be a multiple of 8 of at least 16 pixels")
        if not 0 < self.overlap_deg <= 45:
            raise UserInputError(f"overlap {self.overlap_deg} must be between 0 and 45 degrees")
        if self.width and (self.width < 16 or self.width % 2):
            raise UserInputError(f"sphere width {self.width} must be an even number of at least 16 pixels")


def equirect_width(snapshot, request: SphereRequest) -> int:
    width = request.width or round(snapshot.projection.width * 360.0 / snapshot.projection.span_deg)
    return int(width + width % 2)


def complete_sphere(backend, snapshot, request: SphereRequest, progress=None):
    """A copy of ``snapshot`` (the band unchanged) carrying the full sphere (``snapshot.sphere``)."""
    if offers(backend, "sphere"):
        return backend.sphere(request, snapshot, progress)
    return inpaint_sphere(backend, snapshot, request, progress)


def cap_cameras(snapshot, overlap_deg: float) -> list[tuple[str, R.Camera]]:
    """The views that see the caps: straight up and straight down, reaching ``overlap_deg`` into the band."""
    half_band = math.degrees(math.atan(snapshot.projection.height / 2.0 / snapshot.projection.focal_px))
    fov = min(2.0 * (90.0 - half_band + overlap_deg), MAX_CAP_FOV)
    return [("up", R.look(0.0, 90.0, fov)), ("down", R.look(0.0, -90.0, fov))]


def fill_cameras() -> list[tuple[str, R.Camera]]:
    """Views for what the caps leave (a narrow band's gap, a partial span's sides): rings of
    90-degree views around the horizon and 45 degrees above and below it."""
    return [(f"fill {pitch:+.0f}/{yaw:.0f}", R.look(yaw, pitch, 90.0))
            for pitch in (0.0, 45.0, -45.0) for yaw in range(0, 360, 45)]


def inpaint_sphere(backend, snapshot, request: SphereRequest, progress=None):
    """The generic path: the caps from the band, then (only if something is still missing) further
    views, each inpainted from everything known so far."""
    from dataclasses import replace

    from ..reproject.sources import EquirectSource

    band = BandSource.from_snapshot(snapshot)
    width = equirect_width(snapshot, request)
    sphere = render_equirect(band, width)
    state = (sphere.color.copy(), sphere.distance.copy(), sphere.known.copy())
    plan = cap_cameras(snapshot, request.overlap_deg)
    for index, (name, camera) in enumerate(plan):
        report(progress, "sphere", index, len(plan), name)
        _merge(state, _inpainted_view(backend, band, band.world, snapshot, camera, request, index, progress))
    for sweep in range(3):  # each sweep grows from what the previous ones filled
        if state[2].all():
            break
        for index, (name, camera) in enumerate(fill_cameras(), start=len(plan) + 24 * sweep):
            report(progress, "sphere", index, index + 1, name)
            source = EquirectSource(*state)
            _merge(state, _inpainted_view(backend, source, band.world, snapshot, camera, request, index, progress))
    report(progress, "sphere", 1, 1, "merged")
    return replace(snapshot, sphere=SphereLayers(*state))


def _merge(state, view) -> None:
    """Write a view's content into the equirect where nothing is known yet (known pixels never change)."""
    if view is None:
        return
    color, distance, known = state
    fill_color, fill_distance, covered = view
    missing = ~known & covered
    color[missing] = fill_color[missing]
    distance[missing] = fill_distance[missing]
    known |= covered


def _inpainted_view(backend, source, world, snapshot, camera: R.Camera, request: SphereRequest, index: int,
                    progress):
    """(colour, distance, covered) on the equirect grid from one inpainted view, or None when the
    source already covers everything it sees, or nothing of it to grow from."""
    size = request.view_size
    rays = R.perspective_rays(camera, size, size)
    seen = source.lookup(rays)
    if seen.known.all() or not seen.known.any():
        return None
    cosine = rays @ camera.forward
    modality = depth_modality(backend, "sphere")
    disparity = to_disparity(seen.distance, cosine, world.settings, world.world_scale)
    view = view_snapshot(seen.color, disparity, camera.hfov_deg, modality, snapshot.geometry, snapshot.prompt)
    result = inpaint(backend, view, ~seen.known, request, seed_offset=index, progress=progress)
    view_distance = from_disparity(result.modalities[modality], cosine, world.settings, world.world_scale)
    width = equirect_width(snapshot, request)
    eq_rays = R.equirect_rays(width, width // 2)
    column, row, ahead = R.to_perspective(eq_rays, camera, size, size)
    covered = ahead & inside(column, row, (size, size), False)
    fill_color = bilinear(result.image, column, row, False)
    fill_distance = nearest(view_distance, column, row, False)
    return fill_color, np.where(covered, fill_distance, np.nan).astype(np.float32), covered
