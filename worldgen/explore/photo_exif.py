"""What a photo's EXIF says about how to read it: which way up it is, and its field of view."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

FULL_FRAME_WIDTH_MM = 36.0  # the long side of the 35 mm frame the equivalent focal length refers to
_ORIENTATION, _EXIF_IFD, _FOCAL_35MM = 0x0112, 0x8769, 0xA405
_TURNED = (5, 6, 7, 8)  # orientations whose displayed image is the stored one turned a quarter


def _tags(path) -> tuple[int, Optional[float], tuple[int, int]]:
    """(orientation 1..8, 35 mm-equivalent focal length or None, stored (width, height))."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            exif = img.getexif()
            orientation = int(exif.get(_ORIENTATION, 1) or 1)
            focal = exif.get_ifd(_EXIF_IFD).get(_FOCAL_35MM) or exif.get(_FOCAL_35MM)
            return (orientation if 1 <= orientation <= 8 else 1), (float(focal) if focal else None), img.size
    except Exception:  # no EXIF, or a damaged block: read as stored, ask for --fov
        return 1, None, (0, 0)


def exif_hfov(path) -> Optional[float]:
    """Horizontal field of view (degrees) of the photo as displayed, from its 35 mm-equivalent focal
    length (the frame's long side is 36 mm; the width takes its share of it), or None."""
    orientation, focal, (w, h) = _tags(path)
    if not focal or focal <= 0 or not w or not h:
        return None
    if orientation in _TURNED:
        w, h = h, w
    width_mm = FULL_FRAME_WIDTH_MM * w / max(w, h)
    return 2 * math.degrees(math.atan(width_mm / 2 / focal))


def upright(image: np.ndarray, path) -> np.ndarray:
    """The photo (H, W, C) turned and mirrored the way its EXIF orientation says it is displayed
    (the same transposes as Pillow's ``ImageOps.exif_transpose``)."""
    orientation, _, _ = _tags(path)
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](image)) if orientation in ops else image
