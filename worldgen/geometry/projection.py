"""The cylindrical panorama projection a scene is stored in.

Pixel column u covers azimuth ``span * (u + 0.5) / W`` (degrees, growing to the right); rows are a
pinhole projection vertically onto a cylinder of radius ``f = W / span_rad``, so the vertical field
of view follows from the image size: ``vfov = 2 atan(H / 2f)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import UserInputError


@dataclass(frozen=True)
class CylindricalProjection:
    width: int
    height: int
    span_deg: float = 360.0

    def __post_init__(self) -> None:
        from ..validation import check_span

        object.__setattr__(self, "span_deg", check_span(self.span_deg, "horizontal span"))
        if self.width <= 0 or self.height <= 0:
            raise UserInputError(f"image size {self.width}x{self.height} must be positive")

    @property
    def full_circle(self) -> bool:
        return self.span_deg >= 360.0

    @property
    def focal_px(self) -> float:
        """Cylinder radius in pixels: one pixel of arc length per pixel column."""
        return self.width / math.radians(self.span_deg)

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.height / (2 * self.focal_px)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["type"] = "cylindrical"
        d["vfov_deg"] = round(self.vfov_deg, 6)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "CylindricalProjection":
        if data.get("type", "cylindrical") != "cylindrical":
            raise UserInputError(f"projection type {data.get('type')!r} is not supported; only 'cylindrical' is")
        return cls(width=int(data["width"]), height=int(data["height"]), span_deg=float(data.get("span_deg", 360.0)))
