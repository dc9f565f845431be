"""Screenshots from off the eye (``worldgen view --screenshot ... --position X,Y,Z``): the same
headless render as ``worldgen.viewer.screenshot``, with the camera moved from where the panorama
was taken, to see what a visitor walking about would see (parallax, cuts, background layers)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import UserInputError

MAX_OFFSET = 1000.0  # metres: beyond any world's far plane


def parse_position(text: str) -> np.ndarray:
    """'X,Y,Z' (metres from the eye: x right of the first column's direction, y up, z behind) -> array."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(np.isfinite(values)) or max(abs(v) for v in values) > MAX_OFFSET:
        raise UserInputError(f"--position {text!r} must be X,Y,Z in metres from the eye (each within "
                             f"{MAX_OFFSET:g}), e.g. --position 2,0,-1")
    return np.asarray(values, dtype=np.float64)


def screenshot_from(source, output, offset: np.ndarray, width: int, height: int, yaw_deg: float, pitch_deg: float,
                    fov_deg: float, max_vertices: int) -> Path:
    """Render ``source`` from ``offset`` metres away from its eye to a PNG (atomically); returns the path."""
    from ..scene.atomic import atomic_write_bytes
    from ..scene.image_files import encode_png
    from ..viewer.window import load_source, render_image

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise UserInputError(f"{output} must end in .png")
    view = load_source(source, max_vertices=max_vertices)
    view = replace(view, eye=np.asarray(view.eye, dtype=np.float64) + offset)
    image = render_image(view, width, height, yaw_deg, pitch_deg, fov_deg)
    return atomic_write_bytes(output, encode_png(image))
