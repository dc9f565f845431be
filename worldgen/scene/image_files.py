"""Opening image files people hand worldgen (inputs, masks, scene layers) without trusting their headers.

A PNG of a few kilobytes can claim 60000x60000 pixels (a decompression bomb): decoding it would take
gigabytes. The size in the header is checked against ``validation.MAX_DECODE_PIXELS`` before any
pixel is decoded, and Pillow's own bomb error (its limit is higher) becomes the same one-line error.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UserInputError
from ..validation import check_decode_size


@contextlib.contextmanager
def open_image(source, what: str, fix: str, error: type = UserInputError, kind: str = "image") -> Iterator:
    """``with open_image(path_or_file, "mask image", "give a black-and-white PNG") as img:`` a PIL
    image whose size is known to be decodable; unreadable files raise ``UserInputError``
    ("``what`` is not readable (...); ``fix``"). ``what`` should name the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as img:
            try:
                check_decode_size(img.width, img.height, what)
            except UserInputError as exc:
                raise error(str(exc)) from None
            yield img
    except FileNotFoundError:
        raise error(f"{what} does not exist; {fix}") from None
    except Image.DecompressionBombError:
        raise error(f"{what} claims more pixels than worldgen decodes (a decompression bomb?); "
                             f"{fix}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports damaged files as OSError, ValueError, SyntaxError or EOFError by format.
        text = " ".join(str(exc).split())[:200]
        raise error(f"{what} is not a readable {kind} ({text}); {fix}") from None


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) float image in [0, 1], a uint8 image, or a uint16 (H, W) image."""
    from PIL import Image

    if array.dtype == np.uint16:
        # PIL writes 16-bit greyscale PNGs from mode "I;16", which it infers for a 2-D uint16 array
        # (Pillow 13 refuses an explicit mode= here).
        img = Image.fromarray(np.ascontiguousarray(array, dtype="<u2")) if array.ndim == 2 else None
        if img is None:
            raise ValueError("16-bit PNGs are single-channel")
    else:
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        img = Image.fromarray(array)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def to_uint16(array: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map a single-channel array in ``value_range`` to the full 16-bit range (no 8-bit step)."""
    lo, hi = value_range
    scaled = (np.asarray(array, dtype=np.float64) - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * 65535.0).astype(np.uint16)


def from_uint16(array: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    lo, hi = value_range
    return (np.asarray(array, dtype=np.float64) / 65535.0 * (hi - lo) + lo).astype(np.float32)


def read_image(path: Path, error: type = UserInputError) -> np.ndarray:
    """An RGB image file as (H, W, 3) float32 in [0, 1]; ``error`` is raised if it is unreadable."""
    with open_image(path, str(path), "replace it with a PNG or JPEG", error) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
