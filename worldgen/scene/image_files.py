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


# zlib level for every PNG worldgen writes (issue 24): on a 2048x512 panorama level 1 encodes about
# 2.5x faster than PIL's default 6 for about 30 % more bytes; the pixels are the same.
PNG_LEVEL = 1


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) float image in [0, 1], a uint8 image, or a uint16 (H, W) image.
    A float image is encoded once per content (``_ENCODED``): the scene's image.png and a PNG-textured
    GLB of the same world share the bytes, even when written from two threads at once."""
    if array.dtype.kind == "f":
        return _ENCODED.get(array, lambda: _png_bytes(to_uint8(array)))
    return _png_bytes(array)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as 8-bit pixels (rounded): what every 8-bit file of it holds."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    if array.dtype == np.uint16:
        # PIL writes 16-bit greyscale PNGs from mode "I;16", which it infers for a 2-D uint16 array
        # (Pillow 13 refuses an explicit mode= here).
        img = Image.fromarray(np.ascontiguousarray(array, dtype="<u2")) if array.ndim == 2 else None
        if img is None:
            raise ValueError("16-bit PNGs are single-channel")
    else:
        img = Image.fromarray(array if array.dtype == np.uint8 else to_uint8(array))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


class _RecentEncodings:
    """The PNG bytes of the last few float images, keyed by their content (shape, dtype and two
    checksums, a few ms for a panorama against ~0.2 s to encode it), so an array changed in place is
    encoded again. One lock: a second thread asking for the same image waits and reuses the bytes."""

    def __init__(self, size: int = 2) -> None:
        import threading
        from collections import OrderedDict

        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict = OrderedDict()

    def get(self, array: np.ndarray, encode) -> bytes:
        import zlib

        data = np.ascontiguousarray(array)
        key = (data.shape, data.dtype.str, zlib.crc32(data), zlib.adler32(data))
        with self.lock:
            if key not in self.items:
                self.items[key] = encode()
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
            self.items.move_to_end(key)
            return self.items[key]


_ENCODED = _RecentEncodings()


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


def npy_header(path) -> tuple:
    """(shape, dtype) from a .npy file's header alone: a file claiming a huge or non-numeric array is
    judged before any of its data is read. Raises ValueError, OSError or EOFError for a damaged file."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(handle)
    return shape, dtype
