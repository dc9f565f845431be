"""Float32 OpenEXR files, written with the ``OpenEXR`` wheel (the Academy Software Foundation's own
Python bindings: maintained with the format, binary wheels for every platform, no codec download
at run time as imageio's FreeImage plugin needs)."""

from __future__ import annotations

import os
import tempfile

import numpy as np


def encode_exr(channels: dict[str, np.ndarray]) -> bytes:
    """EXR bytes of same-sized (H, W) float32 channels, ZIP-compressed scanlines.

    The bindings write only to a path, so the file goes through a private temporary file."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    data = {name: np.ascontiguousarray(values, dtype=np.float32) for name, values in channels.items()}
    handle, path = tempfile.mkstemp(suffix=".exr")
    os.close(handle)
    try:
        OpenEXR.File(header, data).write(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def decode_exr(data: bytes) -> dict[str, np.ndarray]:
    """The channels of EXR bytes (tests and round trips)."""
    import OpenEXR

    handle, path = tempfile.mkstemp(suffix=".exr")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        with OpenEXR.File(path) as exr:
            return {name: np.array(ch.pixels) for name, ch in exr.channels().items()}
    finally:
        os.unlink(path)
