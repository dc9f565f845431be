"""Placing an object at a chosen distance in a scene (depth-aware composition).

``worldgen place SCENE "a wooden cabin" --azimuth 40 --distance 12 --width 8`` works in three steps:

1. **Target depth.** The object's front surface is a profile at the requested horizontal distance:
   ``flat`` (a billboard facing the camera: r = d / cos(phi)), ``curved`` (constant r = d) or
   ``round`` (the front of an upright cylinder ``width`` across whose nearest point is at d). It
   stands on the scene's ground (plus ``lift``) and is ``height`` tall, or fills a mask instead.
   Where the scene already has something nearer, that stays in front (the object is occluded
   there), so the object really sits at its depth rather than being pasted over everything.
   The scene's depth keeps every pixel outside the region bit for bit; inside, it becomes the
   object's disparity. A scene whose scale came from a ground fit (relative depth) gets that
   scale written into its geometry first, so the object cannot move the ground fit and with it
   the world's scale (the export then puts it exactly where asked).
2. **Channel-wise inpainting.** The backend's ``edit`` regenerates the RGB inside the region
   with the object's prompt while the depth is known everywhere (``layers="image"``: JointNet
   paints RGB onto a given depth, the depth -> RGB conversion of its inpainting mode).
3. **Boundary refinement.** A band ``border_px`` wide along the inside of the region's edge is
   refined in both layers (``layers="both"``, SDEdit at ``strength``), so the object's outline
   and its depth edge agree. Everything outside the region stays as it was.

A backend that cannot edit (the offline procedural one) gets a plain painted placeholder in the
region instead, and the result says so (``info["rgb"] == "placeholder"``); the geometry is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..backend import Backend, check_prompt
from ..validation import check, check_optional
from ..errors import UserInputError


class HiddenPlacement(UserInputError):
    """A placement that nearer content would hide completely (`worldgen build` skips it unless --strict)."""
from ..scene.snapshot import Snapshot

SHAPES = ("flat", "curved", "round")
DEFAULT_BORDER_PX = 8  # one latent cell of Stable Diffusion's VAE
DEFAULT_BORDER_STRENGTH = 0.5


@dataclass(eq=False)
class Placement:
    """What to place and where. Either ``azimuth`` (degrees, the object's centre) with ``width``
    (metres), or ``mask`` ((H, W) bool, the pixels the object may cover). ``distance`` is the
    horizontal distance (metres) of the object's nearest point. ``height`` defaults to ``width``;
    ``lift`` raises the object's base above the ground."""

    prompt: str
    distance: float
    azimuth: Optional[float] = None
    width: Optional[float] = None
    height: Optional[float] = None
    lift: float = 0.0
    shape: str = "flat"
    mask: Optional[np.ndarray] = field(default=None, repr=False)
    mask_source: Optional[str] = None
    occlude: bool = True
    border_px: int = DEFAULT_BORDER_PX
    border_strength: float = DEFAULT_BORDER_STRENGTH

    def __post_init__(self) -> None:
        self.prompt = check_prompt(self.prompt)
        if not _positive(self.distance):
            raise UserInputError(f"distance {self.distance!r} must be a positive number of metres, e.g. --distance 12")
        if (self.azimuth is None) == (self.mask is None):
            raise UserInputError("say where the object goes: --azimuth DEG with --width M, or --mask FILE (one of them)")
        if self.shape not in SHAPES:
            raise UserInputError(f"shape {self.shape!r} is not one of {', '.join(SHAPES)}")
        if self.azimuth is not None:
            if not _finite(self.azimuth):
                raise UserInputError(f"azimuth {self.azimuth!r} must be a number of degrees")
            if not _positive(self.width):
                raise UserInputError("an object placed by azimuth needs --width in metres (e.g. --width 8)")
        if self.height is not None and not _positive(self.height):
            raise UserInputError(f"height {self.height!r} must be a positive number of metres")
        if not _finite(self.lift):
            raise UserInputError(f"lift {self.lift!r} must be a number of metres")
        if isinstance(self.border_px, bool) or not isinstance(self.border_px, int) or self.border_px < 0:
            raise UserInputError(f"border {self.border_px!r} must be a whole number of pixels, 0 or more")
        if not (_finite(self.border_strength) and 0 < self.border_strength <= 1):
            raise UserInputError(f"border strength {self.border_strength!r} must be in (0, 1]")
        # Bounded too (worldgen.validation): a distance of 1e300 m overflows the depth it becomes.
        self.distance = check("distance", self.distance, "distance")
        self.width = check_optional("metres", self.width, "width")
        self.height = check_optional("metres", self.height, "height")
        self.lift = check("lift", self.lift, "lift")
        if self.azimuth is not None:
            self.azimuth = check("angle", self.azimuth, "azimuth")
        self.border_px = check("pixels", self.border_px, "border")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.ndim != 2 or not self.mask.any():
                raise UserInputError("the placement mask must be an image with a white region (where the object goes)")

    def to_record(self) -> dict:
        out: dict[str, Any] = {"prompt": self.prompt, "distance": self.distance, "shape": self.shape}
        if self.mask is not None:
            out["mask"] = self.mask_source or "array"
        else:
            out.update(azimuth=self.azimuth, width=self.width, height=self.height or self.width)
        if self.lift:
            out["lift"] = self.lift
        if not self.occlude:
            out["occlude"] = False
        out.update(border_px=self.border_px, border_strength=self.border_strength)
        return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


# Target depth -------------------------------------------------------------------------------------

@dataclass
class TargetDepth:
    """``region`` (H, W) bool: pixels the object covers and shows (not occluded). ``disparity``
    (H, W, 1): the scene's depth layer with the object inside ``region``. ``distance`` (H, W):
    the object surface's horizontal distance in metres (NaN where the profile is not).
    ``geometry``: the snapshot's geometry with its scale pinned (see the module docstring).
    ``border`` (H, W) bool: the inner band of ``region`` that is refined. ``world_scale``: the
    scale that was pinned (1 for metric scenes)."""

    region: np.ndarray
    disparity: np.ndarray
    distance: np.ndarray
    geometry: dict
    border: np.ndarray
    world_scale: float
    ground_height: float


def pinned_geometry(snapshot: Snapshot) -> tuple[dict, float, float]:
    """(geometry with the exporter's world scale folded into disparity scale/shift and ``fit_ground``
    off, that scale, the ground's depth below the camera in metres). Exporting the pinned geometry
    gives the same points as exporting the original; later depth edits no longer move the scale."""
    from .world import build_world

    world = build_world(snapshot)
    settings = world.settings
    scale = world.world_scale
    pinned = dict(settings.to_dict(), disparity_scale=settings.disparity_scale / scale,
                  disparity_shift=settings.disparity_shift / scale, fit_ground=False)
    ground = world.ground_height if world.ground_height is not None else settings.eye_height
    return {**snapshot.geometry, **pinned}, float(scale), float(ground)


def _profile(phi: np.ndarray, placement: Placement, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal distance of the object's surface along each column's azimuth offset ``phi``,
    whether the column hits the object), for the placement's shape."""
    d = float(placement.distance)
    half = width / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        if placement.shape == "flat":
            hit = (np.abs(phi) < math.pi / 2) & (np.abs(np.tan(phi)) * d <= half)
            r = d / np.cos(phi)
        elif placement.shape == "curved":
            hit = np.abs(phi) * d <= half
            r = np.full_like(phi, d)
        else:  # round: an upright cylinder of radius half, nearest point at d, centre at d + half
            centre = d + half
            reach = centre * np.abs(np.sin(phi))
            hit = (np.abs(phi) < math.pi / 2) & (reach <= half)
            r = centre * np.cos(phi) - np.sqrt(np.clip(half ** 2 - reach ** 2, 0.0, None))
    return np.where(hit, r, np.nan), hit


def _mask_width(phi_extent: float, placement: Placement) -> float:
    """The width (metres) whose profile spans ``phi_extent`` radians either side of the centre."""
    d = float(placement.distance)
    if placement.shape == "flat":
        return 2.0 * d * math.tan(min(phi_extent, math.radians(89.0)))
    if placement.shape == "curved":
        return 2.0 * d * phi_extent
    s = math.sin(min(phi_extent, math.radians(89.0)))
    return 2.0 * d * s / (1.0 - s)  # the cylinder radius R with sin(extent) = R / (d + R), doubled


def _centre_azimuth(mask: np.ndarray, theta: np.ndarray) -> float:
    """Circular mean azimuth (radians) of the mask's columns, weighted by their pixel counts."""
    counts = mask.sum(axis=0).astype(np.float64)
    return float(np.arctan2((counts * np.sin(theta)).sum(), (counts * np.cos(theta)).sum()))


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _column_profile(projection, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal distance of the object's surface in each column, whether the column meets it),
    centred on the mask's columns (its width then follows from their extent) or on ``azimuth``."""
    from .rays import column_azimuths

    width_px, height_px = projection.width, projection.height
    theta = column_azimuths(projection)
    if placement.mask is not None:
        if placement.mask.shape != (height_px, width_px):
            h, w = placement.mask.shape
            raise UserInputError(f"the mask is {w}x{h} but the scene is {width_px}x{height_px}; "
                                 f"resize the mask to {width_px}x{height_px}")
        centre = _centre_azimuth(placement.mask, theta)
        phi = _wrap(theta - centre)
        extent = float(np.abs(phi[placement.mask.any(axis=0)]).max()) + math.radians(projection.span_deg) / width_px
        object_width = _mask_width(extent, placement)
    else:
        centre = math.radians(placement.azimuth)
        phi = _wrap(theta - centre)
        object_width = float(placement.width)
    return _profile(phi, placement, object_width)


def target_depth(snapshot: Snapshot, placement: Placement) -> TargetDepth:
    """The region and the depth layer with the object in it (see the module docstring)."""
    from .rays import row_slopes
    from .world import GeometrySettings, disparity_to_distance, distance_to_disparity, raw_distance, sky_mask

    if "depth" not in snapshot.modalities:
        raise UserInputError("placing an object needs the scene's depth layer; add one with `worldgen depth` first")
    projection = snapshot.projection
    width_px, height_px = projection.width, projection.height
    geometry, scale, ground = pinned_geometry(snapshot)
    settings = GeometrySettings.from_dict(geometry)
    depth = snapshot.modalities["depth"]

    distance_u, hit_u = _column_profile(projection, placement)
    slopes = row_slopes(projection)[:, None]  # height per metre of horizontal distance, per row
    with np.errstate(invalid="ignore"):
        y = slopes * distance_u[None, :]  # metres above the camera of each pixel on the object's surface
    if placement.mask is not None:
        shape_mask = placement.mask & hit_u[None, :]
    else:
        bottom = -ground + float(placement.lift)
        top = bottom + float(placement.height or placement.width)
        with np.errstate(invalid="ignore"):
            shape_mask = hit_u[None, :] & (y >= bottom) & (y <= top)
    if not shape_mask.any():
        raise UserInputError("the object falls outside the panorama's view; change --azimuth, --distance, "
                             "--height or --lift (the ground is "
                             f"{ground:.2g} m below the camera)")

    object_distance = np.broadcast_to(distance_u[None, :], (height_px, width_px))
    region = shape_mask.copy()
    if placement.occlude:
        current = disparity_to_distance(depth[..., 0], settings)
        current[sky_mask(depth[..., 0], settings)] = np.inf
        region &= current > object_distance
        if not region.any():
            raise HiddenPlacement("everything there is nearer than the object, so it would be hidden; move it nearer "
                                 "(smaller --distance) or elsewhere (--azimuth)")

    object_disparity = distance_to_disparity(np.where(region, object_distance, 1.0), settings)
    inside = object_disparity[region]
    if inside.max() > 1.0 or placement.distance < settings.near:
        nearest = float(raw_distance(np.float32(1.0), settings))
        raise UserInputError(f"{placement.distance:g} m is nearer than this scene's depth can hold (nearest: "
                             f"{max(nearest, settings.near):.3g} m); pass a larger --distance")
    if inside.min() <= settings.sky_disparity or float(np.nanmax(object_distance[region])) >= settings.far:
        raise UserInputError(f"{placement.distance:g} m is as far as the sky in this scene (far: {settings.far:g} m); "
                             f"pass a smaller --distance")
    disparity = depth.copy()
    disparity[region, 0] = object_disparity[region]
    return TargetDepth(region=region, disparity=disparity.astype(np.float32),
                       distance=np.where(shape_mask, object_distance, np.nan).astype(np.float32),
                       geometry=geometry, border=inner_border(region, placement.border_px, projection.full_circle),
                       world_scale=scale, ground_height=ground)


def inner_border(region: np.ndarray, width_px: int, wrap: bool) -> np.ndarray:
    """Pixels of ``region`` within ``width_px`` of a pixel outside it (columns wrap on a 360-degree
    panorama; the image's top and bottom edges do not count as outside)."""
    from scipy import ndimage

    if width_px <= 0:
        return np.zeros_like(region)
    pad = width_px if wrap else 0
    padded = np.concatenate([region[:, -pad:], region, region[:, :pad]], axis=1) if pad else region
    eroded = ndimage.binary_erosion(padded, iterations=width_px, border_value=1)
    if pad:
        eroded = eroded[:, pad:-pad]
    return region & ~eroded


# The whole operation ------------------------------------------------------------------------------

def can_edit(backend) -> bool:
    return backend is not None and type(backend).edit is not Backend.edit


def place_object(snapshot: Snapshot, placement: Placement, backend=None, *, steps: int = 50, guidance: float = 7.5,
                 seed: int = 0, scheduler: Optional[str] = None, negative_prompt: str = "", method: str = "auto",
                 progress=None) -> tuple[Snapshot, dict]:
    """Place the object; returns (the new snapshot, a JSON-ready record of what was done).

    ``backend`` must be able to ``edit`` (JointNet); None (or one that cannot) paints a placeholder."""
    from ..sampler.requests import EditRequest

    target = target_depth(snapshot, placement)
    staged = Snapshot(image=snapshot.image, modalities={**snapshot.modalities, "depth": target.disparity},
                      projection=snapshot.projection, geometry=target.geometry, prompt=snapshot.prompt)
    info = {**placement.to_record(), "pixels": int(target.region.sum()), "border_pixels": int(target.border.sum()),
            "pinned_world_scale": target.world_scale, "ground_height": target.ground_height}
    common = dict(prompt=placement.prompt, negative_prompt=negative_prompt, steps=steps, guidance=guidance,
                  scheduler=scheduler, method=method)
    if can_edit(backend):
        if "depth" not in getattr(backend, "modalities", (backend.modality,)):
            raise UserInputError(f"placing objects needs a depth model; {backend.name} makes {backend.modality!r}")
        result = backend.edit(EditRequest(**common, seed=seed, mask=target.region, layers="image"), staged, progress)
        if target.border.any():
            result = backend.edit(EditRequest(**common, seed=seed + 1, mask=target.border, layers="both",
                                              strength=placement.border_strength), result, progress)
        info["rgb"] = backend.name
    else:
        image = np.where(target.region[..., None], placeholder_paint(snapshot, target, placement.prompt),
                         snapshot.image).astype(np.float32)
        result = Snapshot(image=image, modalities={"depth": target.disparity}, projection=snapshot.projection,
                          geometry=target.geometry, prompt=snapshot.prompt)
        info["rgb"] = "placeholder"
        info["border_pixels"] = 0
    result.geometry = dict(target.geometry)
    result.prompt = snapshot.prompt
    info["updated_layers"] = _carry_other_layers(snapshot, result, target.region)
    return result, info


def _carry_other_layers(before: Snapshot, after: Snapshot, region: np.ndarray) -> list[str]:
    """Keep the scene's other modality layers: normals are re-derived from the new depth inside the
    region (outside they stay as they were); layers worldgen cannot update are kept unchanged outside
    and inside alike, and named in the returned list with a '(kept)' mark."""
    from ..registry import get_registry

    notes = []
    for name, layer in before.modalities.items():
        if name == "depth":
            continue
        if name == "normal":
            spec = get_registry().modality("normal")
            fresh = spec.estimator(after.image, depth=after.modalities["depth"], projection=after.projection,
                                   geometry=after.geometry)
            base = after.modalities.get("normal", layer)
            after.modalities["normal"] = np.where(region[..., None], fresh, base).astype(np.float32)
            notes.append("normal")
        elif name not in after.modalities:
            after.modalities[name] = layer
            notes.append(f"{name} (kept)")
    return notes


# Placeholder painting (no diffusion model) ---------------------------------------------------------

_MATERIALS = {
    ("wood", "wooden", "cabin", "hut", "barn", "log", "timber", "shed"): (0.45, 0.30, 0.18),
    ("stone", "rock", "castle", "tower", "ruin", "ruins", "wall", "fort", "statue"): (0.55, 0.54, 0.52),
    ("brick", "red", "roof"): (0.62, 0.25, 0.20),
    ("white", "snow", "marble", "lighthouse", "church", "chapel"): (0.90, 0.90, 0.88),
    ("metal", "steel", "iron", "car", "robot", "ship"): (0.50, 0.55, 0.60),
    ("tree", "trees", "bush", "hedge", "pine", "oak"): (0.18, 0.36, 0.16),
    ("tent", "yellow", "gold", "golden", "sand"): (0.85, 0.70, 0.30),
    ("blue", "water"): (0.20, 0.35, 0.65),
}
_DEFAULT_COLOUR = (0.60, 0.52, 0.45)


def placeholder_colour(prompt: str) -> np.ndarray:
    import re

    words = set(re.findall(r"[a-z]+", prompt.lower()))
    for names, colour in _MATERIALS.items():
        if words & set(names):
            return np.asarray(colour, dtype=np.float32)
    return np.asarray(_DEFAULT_COLOUR, dtype=np.float32)


def placeholder_paint(snapshot: Snapshot, target: TargetDepth, prompt: str) -> np.ndarray:
    """An (H, W, 3) image of the object as a plain shaded shape: a colour from the prompt's words,
    lit from above and darker towards its base and sides, so its outline and depth read clearly."""
    colour = placeholder_colour(prompt)
    rows = np.nonzero(target.region.any(axis=1))[0]
    top, bottom = (rows.min(), rows.max()) if len(rows) else (0, 1)
    v = (np.arange(snapshot.projection.height, dtype=np.float32) - top) / max(1, bottom - top)
    light = 1.0 - 0.35 * np.clip(v, 0.0, 1.0)[:, None]
    # Distance beyond the nearest point: the flanks of a flat or round object turn away and darken.
    d = np.nan_to_num(target.distance, nan=np.nanmin(target.distance) if np.isfinite(target.distance).any() else 1.0)
    flank = np.clip((d - np.nanmin(d)) / max(float(np.nanmin(d)), 1e-6) * 4.0, 0.0, 0.4)
    shade = (light * (1.0 - flank))[..., None]
    return np.clip(colour[None, None, :] * shade, 0.0, 1.0).astype(np.float32)
