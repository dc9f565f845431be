"""Region prompts: parts of a panorama that follow their own text, blended with soft edges.

A ``Region`` is an azimuth range (optionally narrowed to an elevation range) or a mask image, with
its own prompt and weight. Over a canvas of any resolution (pixels or latent cells) each region
gets a soft coverage in [0, 1] (1 inside, a linear ramp ``feather`` degrees wide centred on its
edges, 0 outside). Conditions are the panorama prompt (index 0) and the regions (1..K); their
per-pixel weights are::

    base     = 1 - max_r coverage_r        (the panorama prompt where no region is)
    region_r = weight_r * coverage_r

The diffusion sampler uses them as in MultiDiffusion's region control: each window is run once per
condition whose weight touches it (all such (window, condition) pairs in ONE batched model call),
and the predicted noise is blended per pixel with these weights. Blending inside each window and
then across windows with the tile weights gives exactly the global per-pixel blend, because a
pixel's condition weights are the same in every window that covers it (see
``regional_denoiser``). ``weight`` only matters where conditions meet: at soft edges and where
regions overlap, a heavier region wins more of the mix.

Text syntax (CLI ``--region``, recipes)::

    A:B=PROMPT              azimuth A..B degrees (A > B wraps through 0 on a 360-degree panorama)
    A:B@E1:E2=PROMPT        ... only between elevations E1..E2 degrees above the horizon
    A:B*1.5=PROMPT          ... with weight 1.5 (default 1)
    masks/boat.png=PROMPT   a mask image (white = the region), resized to the canvas
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..backend import check_prompt
from ..validation import check, printable
from ..errors import UserInputError

# Soft edge width in degrees: about a window's edge ramp on a 2048-px panorama (8 latents = 11 deg),
# so a region edge fades over the same distance as two overlapping windows.
DEFAULT_FEATHER_DEG = 8.0
REGION_MODES = ("blend", "window")

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE_RE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*(?:@\s*({_NUMBER})\s*:\s*({_NUMBER})\s*)?$")
_WEIGHT_RE = re.compile(rf"^(.*?)\s*\*\s*({_NUMBER})\s*$")
SYNTAX = "\"A:B=PROMPT\", \"A:B@E1:E2=PROMPT\", \"A:B*WEIGHT=PROMPT\" or \"MASK.png=PROMPT\""


@dataclass(eq=False)
class Region:
    """One region: ``azimuth`` (start, end) degrees or ``mask`` ((H, W) float in [0, 1]), never both.

    ``elevation`` (low, high) degrees above the horizon narrows an azimuth region. ``feather`` is
    the soft-edge width in degrees of an azimuth/elevation region (0: hard edges); a mask's soft
    edges are its own grey levels (and the area averaging when it shrinks to latent cells).
    ``source`` says where a mask came from (for the scene's record)."""

    prompt: str
    azimuth: Optional[tuple[float, float]] = None
    elevation: Optional[tuple[float, float]] = None
    mask: Optional[np.ndarray] = field(default=None, repr=False)
    weight: float = 1.0
    feather: float = DEFAULT_FEATHER_DEG
    source: Optional[str] = None

    def __post_init__(self) -> None:
        self.prompt = check_prompt(self.prompt)
        if (self.azimuth is None) == (self.mask is None):
            raise UserInputError(f"region {self.prompt!r} needs an azimuth range or a mask (exactly one), "
                                 f"e.g. {SYNTAX}")
        # Bounded (not just positive): a weight near float32's limit overflows the blend to NaN.
        self.weight = check("weight", self.weight, f"region {printable(repr(self.prompt))}: weight")
        self.feather = check("feather", self.feather, f"region {printable(repr(self.prompt))}: feather")
        if self.azimuth is not None:
            self.azimuth = _pair(self.azimuth, "azimuth", self.prompt)
            a0, a1 = self.azimuth
            if not all(0.0 <= a <= 360.0 for a in (a0, a1)):
                raise UserInputError(f"region {self.prompt!r}: azimuth {a0:g}:{a1:g} must lie in 0..360 degrees")
            if a0 == a1:
                raise UserInputError(f"region {self.prompt!r}: azimuth {a0:g}:{a1:g} is empty; give two different angles")
        if self.elevation is not None:
            if self.azimuth is None:
                raise UserInputError(f"region {self.prompt!r}: elevation applies to azimuth regions; "
                                     f"draw it into the mask instead")
            self.elevation = _pair(self.elevation, "elevation", self.prompt)
            e0, e1 = self.elevation
            if not (-90.0 <= e0 < e1 <= 90.0):
                raise UserInputError(f"region {self.prompt!r}: elevation {e0:g}:{e1:g} must rise, within -90..90 degrees")
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=np.float32)
            if mask.ndim == 3 and mask.shape[-1] == 1:
                mask = mask[..., 0]
            if mask.ndim != 2 or not np.isfinite(mask).all():
                raise UserInputError(f"region {self.prompt!r}: the mask must be an (H, W) image of finite values")
            self.mask = np.clip(mask, 0.0, 1.0)
            if not (self.mask > 0).any():
                raise UserInputError(f"region {self.prompt!r}: the mask is all black; paint the region white")

    # Construction -----------------------------------------------------------------------------
    @classmethod
    def from_mask_file(cls, path: str | Path, prompt: str, weight: float = 1.0, feather: float = DEFAULT_FEATHER_DEG
                       ) -> "Region":
        return cls(prompt=prompt, mask=read_mask_image(path), weight=weight, feather=feather, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, base_dir: Optional[Path] = None) -> "Region":
        """A region from a recipe table: ``prompt`` plus ``azimuth = [A, B]`` (and ``elevation``) or
        ``mask = "file.png"`` (relative to ``base_dir``), optional ``weight`` and ``feather``."""
        known = {"prompt", "azimuth", "elevation", "mask", "weight", "feather"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserInputError(f"unknown region field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        if "prompt" not in data:
            raise UserInputError("a region needs a prompt")
        kw = {k: data[k] for k in ("weight", "feather") if k in data}
        if "mask" in data:
            if "azimuth" in data or "elevation" in data:
                raise UserInputError("give a region an azimuth range or a mask, not both")
            path = Path(str(data["mask"]))
            return cls.from_mask_file(path if base_dir is None or path.is_absolute() else base_dir / path,
                                      data["prompt"], **kw)
        return cls(prompt=data["prompt"], azimuth=data.get("azimuth"), elevation=data.get("elevation"), **kw)

    # Description --------------------------------------------------------------------------------
    def to_record(self) -> dict:
        """JSON-ready description for a scene's manifest (a mask is named, not stored)."""
        out: dict[str, Any] = {"prompt": self.prompt, "weight": self.weight, "feather": self.feather}
        if self.azimuth is not None:
            out["azimuth"] = list(self.azimuth)
            if self.elevation is not None:
                out["elevation"] = list(self.elevation)
        else:
            out["mask"] = self.source or f"array {self.mask.shape[1]}x{self.mask.shape[0]}"
        return out

    def label(self) -> str:
        if self.azimuth is None:
            where = f"mask {self.source or 'array'}"
        else:
            where = f"azimuth {self.azimuth[0]:g}:{self.azimuth[1]:g}"
            if self.elevation is not None:
                where += f" elevation {self.elevation[0]:g}:{self.elevation[1]:g}"
        weight = f" weight {self.weight:g}" if self.weight != 1.0 else ""
        return f"{where}{weight}: {self.prompt}"

    # Coverage ---------------------------------------------------------------------------------
    def coverage(self, width: int, height: int, span_deg: float) -> np.ndarray:
        """(height, width) float32 soft coverage in [0, 1] on a canvas of that size covering
        ``span_deg`` (any resolution: pixels, or latent cells of the same panorama)."""
        if self.mask is not None:
            return _resize_mask(self.mask, width, height)
        a0, a1 = self.azimuth
        full = span_deg >= 360.0
        if not full and (a0 > a1 or a1 > span_deg):
            raise UserInputError(f"region {self.prompt!r}: azimuth {a0:g}:{a1:g} is outside this panorama's "
                                 f"0:{span_deg:g} degrees (only a full 360-degree panorama wraps)")
        theta = span_deg * (np.arange(width, dtype=np.float64) + 0.5) / width
        inside = _signed_distance_arc(theta, a0, a1, full)
        cover = _ramp(inside, self.feather)[None, :]
        if self.elevation is not None:
            focal = width / math.radians(span_deg)
            rows = np.arange(height, dtype=np.float64)
            elevation = np.degrees(np.arctan((height / 2.0 - (rows + 0.5)) / focal))
            e0, e1 = self.elevation
            cover = cover * _ramp(np.minimum(elevation - e0, e1 - elevation), self.feather)[:, None]
        return np.broadcast_to(cover, (height, width)).astype(np.float32)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: Any, what: str, prompt: str) -> tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_finite(v) for v in value)):
        raise UserInputError(f"region {prompt!r}: {what} must be two numbers in degrees, e.g. [0, 90]")
    return float(value[0]), float(value[1])


def _signed_distance_arc(theta: np.ndarray, a0: float, a1: float, circular: bool) -> np.ndarray:
    """Degrees from each azimuth to the edge of the arc a0 -> a1 (rightwards): positive inside."""
    if not circular:
        return np.minimum(theta - a0, a1 - theta)
    length = (a1 - a0) % 360.0 or 360.0
    offset = (theta - a0) % 360.0
    inside = np.minimum(offset, length - offset)
    outside = -np.minimum(offset - length, 360.0 - offset)
    return np.where(offset <= length, inside, outside)


def _ramp(signed: np.ndarray, feather: float) -> np.ndarray:
    """1 well inside, 0 well outside, linear over ``feather`` degrees centred on the edge."""
    if feather <= 0:
        return (signed >= 0).astype(np.float64)
    return np.clip(0.5 + signed / feather, 0.0, 1.0)


def _resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A float mask resized to (height, width): box-filtered when shrinking (area coverage of each
    latent cell), bilinear when growing."""
    from PIL import Image

    h, w = mask.shape
    if (w, h) == (width, height):
        return mask.astype(np.float32, copy=True)
    shrink = width <= w and height <= h
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32), mode="F")
    resized = image.resize((width, height), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def read_mask_image(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) float32 in [0, 1] (white = 1); greys are kept as soft coverage."""
    from ..scene.image_files import open_image

    path = Path(path)
    with open_image(path, f"mask {path}", "give the path of a black-and-white PNG", kind="mask image") as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


# Parsing ---------------------------------------------------------------------------------------------

def parse_region(text: str, base_dir: Optional[Path] = None, allow_masks: bool = True) -> Region:
    """A region from its text form (see the module docstring); a mask path is read at once.
    ``allow_masks=False`` refuses mask regions before touching the file system (a server must not
    read files that a client names)."""
    spec, sep, prompt = str(text).partition("=")
    if not sep or not prompt.strip() or not spec.strip():
        raise UserInputError(f"region {text!r} is not {SYNTAX}")
    weight = 1.0
    weighted = _WEIGHT_RE.match(spec)
    if weighted:
        spec, weight = weighted.group(1), float(weighted.group(2))
    match = _RANGE_RE.match(spec)
    if match:
        a0, a1, e0, e1 = match.groups()
        elevation = (float(e0), float(e1)) if e0 is not None else None
        return Region(prompt=prompt, azimuth=(float(a0), float(a1)), elevation=elevation, weight=weight)
    if re.match(r"^\s*[-+.\d]+\s*:", spec) or "@" in spec:
        raise UserInputError(f"region {text!r}: {spec.strip()!r} is not an azimuth range; write A:B or A:B@E1:E2 "
                             f"in degrees, e.g. 0:90=a lighthouse")
    if not allow_masks:
        raise UserInputError(f"region {text!r}: mask regions are not accepted here; give an azimuth range "
                             f"such as 0:90={prompt.strip()}")
    path = Path(spec.strip())
    return Region.from_mask_file(path if base_dir is None or path.is_absolute() else base_dir / path, prompt,
                                 weight=weight)


def normalize_regions(regions: Optional[Sequence[Any]]) -> list[Region]:
    """``GenerateRequest.regions`` entries (``Region``, text, or recipe-style dicts) as ``Region``s."""
    out = []
    for item in regions or ():
        if isinstance(item, Region):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_region(item))
        elif isinstance(item, dict):
            out.append(Region.from_dict(item))
        else:
            raise UserInputError(f"a region must be text like {SYNTAX} or a table, not {type(item).__name__}")
    return out


# Weights ---------------------------------------------------------------------------------------------

def condition_weights(regions: Sequence[Region], width: int, height: int, span_deg: float) -> np.ndarray:
    """(1 + K, height, width) float32 per-pixel weights of [panorama prompt, region 1..K].

    Every pixel has a positive total (where a region covers fully, its weight is > 0). A region
    that covers nothing at this resolution is an error: its prompt would never reach the model."""
    if not regions:
        return np.ones((1, height, width), dtype=np.float32)
    cover = np.stack([r.coverage(width, height, span_deg) for r in regions])
    for region, c in zip(regions, cover):
        if not (c > 0).any():
            raise UserInputError(f"region {region.label()!r} covers no part of the {width}x{height} canvas "
                                 f"(outside the view?); widen it or drop it")
    base = 1.0 - cover.max(axis=0)
    weights = cover * np.asarray([r.weight for r in regions], dtype=np.float32)[:, None, None]
    return np.concatenate([base[None], weights]).astype(np.float32)


def blend_by_weights(layers: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted mean of (H, W, C) ``layers`` with (len(layers), H, W) ``weights``."""
    total = weights.sum(axis=0)[..., None]
    out = sum(w[..., None] * layer for w, layer in zip(weights, layers))
    return (out / total).astype(np.float32)


def dominant_conditions(crops):
    """(N, 1 + K, h, w) window crops of the condition weights -> (N,) index of the condition that
    covers most of each window (ties: the lower index, i.e. the panorama prompt first)."""
    return crops.flatten(2).sum(-1).argmax(dim=1)


ConditionedDenoiser = Callable[..., Any]  # (x, t, windows, conditions) -> eps


def regional_denoiser(denoise: ConditionedDenoiser, weights, mode: str = "blend"):
    """Wrap ``denoise(x, t, windows, conditions)`` (``conditions``: (N,) long index of the text
    condition each window row uses) as the tiled sampler's ``denoise(x, t, windows)``.

    ``weights`` is the (1, 1 + K, h, w) tensor of ``condition_weights`` on the latent canvas.
    "blend": every window runs once per condition whose weight touches it, all pairs in ONE call,
    and the predictions are blended per pixel by the weights. "window": every window runs once,
    with the condition covering most of it (cheaper; region edges follow window edges)."""
    import torch

    if mode not in REGION_MODES:
        raise UserInputError(f"region mode {mode!r} is not one of {', '.join(REGION_MODES)}")

    def regional(x, t, windows):
        crops = windows.crop(weights)  # (N, 1 + K, h, w)
        if crops.shape[0] != x.shape[0]:
            raise ValueError("region prompts need a batch of one panorama (one window row per window)")
        if mode == "window":
            return denoise(x, t, windows, dominant_conditions(crops))
        touches = crops.flatten(2).amax(-1) > 0  # (N, 1 + K)
        window, condition = touches.nonzero(as_tuple=True)
        # replace(): the batch keeps whatever else the sampler says about this call (step, guidance).
        pairs = replace(windows, index=windows.index[window.to(windows.index.device)])
        eps = denoise(x[window], t, pairs, condition)
        w = crops[window, condition][:, None].float()  # (P, 1, h, w)
        numerator = torch.zeros((x.shape[0], *eps.shape[1:]), dtype=torch.float32, device=eps.device)
        numerator.index_add_(0, window.to(eps.device), eps.float() * w.to(eps.device))
        total = torch.zeros((x.shape[0], 1, *eps.shape[2:]), dtype=torch.float32, device=eps.device)
        total.index_add_(0, window.to(eps.device), w.to(eps.device))
        return (numerator / total).to(eps.dtype)

    return regional


def latent_condition_weights(regions: Sequence[Region], width: int, height: int, span_deg: float, device=None,
                             dtype=None):
    """``condition_weights`` at latent resolution as a (1, 1 + K, h, w) torch tensor."""
    import torch

    weights = torch.from_numpy(condition_weights(regions, width, height, span_deg))[None]
    return weights.to(device=device, dtype=dtype or torch.float32)
