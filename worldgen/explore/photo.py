"""A world grown around a photo (``worldgen pano --image``, ``worldgen outpaint --photo``).

1. The perspective photo is resampled into the cylindrical panorama (each panorama pixel's ray is
   projected into the photo's pinhole camera, colour read bilinearly), centred on the canvas's
   middle column; its field of view comes from EXIF (35 mm-equivalent focal length) or ``--fov``.
2. Its depth is estimated by channel-wise inpainting (the backend's ``estimate``: RGB kept, depth
   generated) on the photo itself, and carried to the cylinder with the same rays (disparity of
   the horizontal distance, as the band stores it).
3. Everything around it is generated jointly in RGB and depth (``edit`` on the canvas, the photo's
   footprint kept bit for bit).
4. The generated colours are matched to the photo across its edge: per channel, their mean and
   spread near the edge are brought to the photo's, fully at the edge and fading with distance.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from ..errors import UserInputError
from ..geometry.world import GeometrySettings, default_geometry
from ..scene.snapshot import Snapshot
from ..progress import report
from ..geometry.projection import CylindricalProjection
from ..reproject import rays as R
from ..reproject.sample import bilinear, nearest
from .inpaint import InpaintSettings, depth_modality, inpaint
from .photo_exif import exif_hfov, upright

EDGE_BAND_FRACTION = 1 / 32  # of the panorama's width: the rings whose colours are compared
FADE_FRACTION = 1 / 8  # of the width: how far from the edge the colour correction fades out


def read_photo(path) -> np.ndarray:
    """A photo as (H, W, 3) float32 in [0, 1], the way up its EXIF says it is displayed."""
    from ..scene.image_files import read_image

    return upright(read_image(path), path)


def photo_fov(path, fov: Optional[float]) -> float:
    if fov is None:
        fov = exif_hfov(path)
        if fov is None:
            raise UserInputError(f"{path} has no 35 mm focal length in its EXIF; pass --fov DEGREES (its horizontal "
                                 f"field of view, e.g. --fov 65 for a phone's main camera)")
    if not 1.0 <= float(fov) <= 170.0:
        raise UserInputError(f"--fov {fov} must be between 1 and 170 degrees (a pinhole photo's horizontal view)")
    return float(fov)


def photo_camera(projection: CylindricalProjection, hfov: float, yaw_deg: Optional[float] = None) -> R.Camera:
    """The photo's camera: level, looking ``yaw_deg`` right of the first column (default: the canvas's middle)."""
    return R.look(projection.span_deg / 2.0 if yaw_deg is None else yaw_deg, 0.0, hfov)


def footprint(projection: CylindricalProjection, camera: R.Camera, width: int, height: int):
    """(column, row, known) of every panorama pixel in the photo: known where its ray lands
    within the photo's outer pixel centres."""
    column, row, ahead = R.to_perspective(R.cylinder_rays(projection), camera, width, height)
    known = ahead & (column >= 0) & (column <= width - 1) & (row >= 0) & (row <= height - 1)
    return column, row, known


def photo_on_cylinder(photo: np.ndarray, hfov: float, projection: CylindricalProjection,
                      yaw_deg: Optional[float] = None):
    """(canvas image, known mask): the photo resampled into the panorama (zeros elsewhere)."""
    h, w = photo.shape[:2]
    column, row, known = footprint(projection, photo_camera(projection, hfov, yaw_deg), w, h)
    if not known.any():
        raise UserInputError("the photo does not reach the panorama's band; give a wider --fov or a taller --size")
    image = np.where(known[..., None], bilinear(photo.astype(np.float32), column, row, False), 0.0)
    return image.astype(np.float32), known


def depth_on_cylinder(disparity: np.ndarray, hfov: float, projection: CylindricalProjection,
                      settings: GeometrySettings, yaw_deg: Optional[float] = None) -> np.ndarray:
    """The photo's (perspective, z-depth) disparity as the band's disparity of horizontal distance."""
    from .view_depth import from_disparity, to_disparity

    h, w = disparity.shape[:2]
    camera = photo_camera(projection, hfov, yaw_deg)
    cosine = R.perspective_rays(camera, w, h) @ camera.forward
    along = from_disparity(disparity, cosine, settings, 1.0)
    rays = R.cylinder_rays(projection)
    column, row, _ = R.to_perspective(rays, camera, w, h)
    horizontal = np.hypot(rays[..., 0], rays[..., 2])
    return to_disparity(nearest(along, column, row, False), horizontal, settings, 1.0)


def match_edge_colour(image: np.ndarray, known: np.ndarray, wrap: bool) -> np.ndarray:
    """``image`` with its generated part (``~known``) brought to the photo's colour and light at the edge.

    Each generated pixel next to the photo takes the difference to its nearest photo pixel; those
    differences are smoothed along the edge (a normalised Gaussian, so one noisy pixel does not
    streak) and added to the generated part, fully at the edge and fading out over ``FADE_FRACTION``
    of the width: local light and colour continue across the edge, far parts stay as generated."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    width = image.shape[1]
    band = max(2.0, width * EDGE_BAND_FRACTION)
    fade = max(band, width * FADE_FRACTION)
    pad = width if wrap else 0  # distances and smoothing across the 360-degree seam

    def tile(a):
        return np.concatenate([a[:, -pad:], a, a[:, :pad]], axis=1) if pad else a

    outside, (rows, cols) = distance_transform_edt(~tile(known), return_indices=True)
    outside, rows, cols = (a[:, pad:pad + width] for a in (outside, rows, cols))
    ring = ~known & (outside <= 1.5)
    if not ring.any() or not known.any():
        return image
    nearest_photo = tile(image)[rows, cols]
    diff = np.where(ring[..., None], nearest_photo - image, 0.0)
    mode = ("nearest", "wrap") if wrap else "nearest"
    sigma = (band, band)
    weight_sum = gaussian_filter(ring.astype(np.float64), sigma, mode=mode)
    offset = np.stack([gaussian_filter(diff[..., c], sigma, mode=mode) for c in range(3)], -1)
    offset = offset / np.maximum(weight_sum, 1e-6)[..., None]
    # Far from the edge the normalised field is noise over a vanishing weight: the fade ends before that.
    fade_weight = np.where(known, 0.0, np.clip(1.0 - (outside - 1.0) / fade, 0.0, 1.0))
    fade_weight *= np.clip(weight_sum / max(float(weight_sum[ring].mean()), 1e-6) * 4, 0.0, 1.0)
    return np.clip(image + fade_weight[..., None] * offset, 0.0, 1.0).astype(np.float32)


def world_from_photo(backend, photo: np.ndarray, hfov: float, width: int, height: int, span_deg: float,
                     settings: InpaintSettings, progress=None, yaw_deg: Optional[float] = None) -> Snapshot:
    """A panorama snapshot grown around ``photo`` (its footprint's pixels are the resampled photo),
    its centre ``yaw_deg`` right of the first column (default: the canvas's middle)."""
    from ..sampler.canvas import resize_lanczos
    from ..sampler.requests import EstimateRequest

    projection = CylindricalProjection(width, height, span_deg)
    image, known = photo_on_cylinder(photo, hfov, projection, yaw_deg)
    report(progress, "photo", 0, 3, "depth of the photo")
    h, w = photo.shape[:2]
    scale = min(1.0, 1024 / max(h, w))
    ew, eh = max(8, int(round(w * scale / 8)) * 8), max(8, int(round(h * scale / 8)) * 8)
    small = np.clip(resize_lanczos(photo.astype(np.float32), ew, eh, False), 0.0, 1.0)
    estimated = backend.estimate(EstimateRequest(prompt=settings.prompt, steps=settings.steps, guidance=settings.guidance,
                                                 seed=settings.seed, scheduler=settings.scheduler, image=small,
                                                 span_deg=min(hfov, 359.0)), progress)
    geometry = default_geometry()
    modality = depth_modality(backend, "a world from a photo")
    disparity = depth_on_cylinder(estimated.modalities[modality], hfov, projection, GeometrySettings.from_dict(geometry),
                                  yaw_deg)
    canvas = Snapshot(image=image, modalities={modality: np.where(known[..., None], disparity, 0.0).astype(np.float32)},
                      projection=projection, geometry=geometry, prompt=settings.prompt)
    report(progress, "photo", 1, 3, "the world around it")
    grown = inpaint(backend, canvas, ~known, settings, progress=progress)
    report(progress, "photo", 2, 3, "colour across the edge")
    matched = match_edge_colour(grown.image, known, projection.full_circle)
    report(progress, "photo", 3, 3, "done")
    return replace(grown, image=np.where(known[..., None], image, matched).astype(np.float32))
