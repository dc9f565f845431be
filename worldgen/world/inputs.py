"""Outside files a scene task reads: a modality layer (.npy or 16-bit PNG) and a black-and-white mask."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserInputError


def as_image(source):
    """An RGB image as (H, W, 3) float32 in [0, 1] from a file or an array (uint8 or float)."""
    import numpy as np

    if isinstance(source, (str, Path)):
        from ..scene.image_files import read_image

        return read_image(Path(source))
    array = np.asarray(source)
    return (array / 255.0 if array.dtype == np.uint8 else array).astype(np.float32)


def read_modality_file(path: Path, spec, width: Optional[int] = None, height: Optional[int] = None):
    """A modality layer from a file: ``.npy`` (H, W) or (H, W, C), or for single-channel modalities
    a PNG (16-bit read at full depth). With ``width``/``height`` it must match the image's size."""
    import numpy as np

    from ..geometry.world import read_depth_png

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserInputError(f"{path} is not a readable .npy array ({exc}); save it with numpy.save") from None
    elif suffix == ".png" and spec.channels == 1:
        array = read_depth_png(path, spec.value_range)
    else:
        raise UserInputError(f"{path}: give the {spec.name} layer as .npy"
                             + (" or a 16-bit PNG" if spec.channels == 1 else ""))
    return check_modality_array(np.asarray(array, dtype=np.float32), spec, str(path), width, height)


def check_modality_array(array, spec, where: str, width: Optional[int] = None, height: Optional[int] = None):
    """A (H, W, C) float32 layer of ``spec``'s channels, finite, and the image's size when given."""
    import numpy as np

    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] != spec.channels:
        raise UserInputError(f"{where} has shape {array.shape}; the {spec.name} layer needs (H, W, {spec.channels})")
    if width is not None and array.shape[:2] != (height, width):
        raise UserInputError(f"{where} is {array.shape[1]}x{array.shape[0]} but the image is {width}x{height}; "
                             f"give both layers at the same size")
    if not np.isfinite(array).all():
        raise UserInputError(f"{where} holds NaN or infinite values; fix or regenerate the layer")
    return array


def read_mask(path: Path):
    """A mask image as (H, W) bool: white (> 50%) = change, black = keep."""
    import numpy as np

    from ..scene.image_files import open_image

    with open_image(path, str(path), "give a black-and-white PNG", kind="mask image") as img:
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return grey > 0.5


def as_mask(mask):
    """A mask given as a file path or an array (bool, or numbers where > 0.5 is white) -> (H, W) bool."""
    import numpy as np

    if isinstance(mask, (str, Path)):
        return read_mask(Path(mask))
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array.mean(axis=-1) / (255.0 if array.dtype == np.uint8 else 1.0)
    elif array.dtype == np.uint8:
        array = array / 255.0
    if array.ndim != 2:
        raise UserInputError(f"a mask must be (H, W) or (H, W, C), got shape {np.asarray(mask).shape}")
    return array > 0.5 if array.dtype != bool else array
