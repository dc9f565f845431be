"""Layers a version may carry beside its cylindrical band: the full sphere (``worldgen sphere``)
and the background behind the band's depth cuts (``worldgen layers``).

In a scene folder they are files of the version's folder, listed under their own manifest keys
(``sphere``, ``background``) so that readers of the band alone (older worldgen, every exporter
that knows only the band) keep working:

    "sphere": {"projection": {"type": "equirectangular", "width": 2048, "height": 1024},
               "image": "v3/sphere_image.png", "distance": "v3/sphere_distance.npy",
               "known": "v3/sphere_known.png"}
    "background": {"image": "v4/background_image.png", "modality": "v4/background_depth.npy",
                   "mask": "v4/background_mask.png"}

``sphere.distance`` is metres along each ray (``inf`` = sky), in the world scale of the version's
geometry; ``known`` is white where the sphere holds content. The background holds, on the band's
grid, what lies behind the foreground where ``mask`` is white: colour and the band's modality
(disparity for depth) of the hidden surface.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import SceneError


@dataclass
class SphereLayers:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1], H = W / 2
    distance: np.ndarray  # (H, W) float32 metres along the ray, inf = sky
    known: np.ndarray  # (H, W) bool

    def __post_init__(self) -> None:
        h, w = self.distance.shape
        if self.image.shape != (h, w, 3) or self.known.shape != (h, w) or w != 2 * h:
            raise ValueError(f"sphere layers disagree: image {self.image.shape}, distance {self.distance.shape}, "
                             f"known {self.known.shape} (want a 2:1 equirect)")

    def projection(self) -> dict:
        h, w = self.distance.shape
        return {"type": "equirectangular", "width": int(w), "height": int(h)}


@dataclass
class BackgroundLayers:
    image: np.ndarray  # (H, W, 3) float32, the band's grid
    modality: np.ndarray  # (H, W, C) float32, the band's modality (disparity for depth)
    mask: np.ndarray  # (H, W) bool: where a background exists

    def __post_init__(self) -> None:
        h, w = self.mask.shape
        if self.image.shape != (h, w, 3) or self.modality.shape[:2] != (h, w):
            raise ValueError("background layers disagree in size")


def _png(array: np.ndarray) -> bytes:
    from .image_files import encode_png

    return encode_png(array)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def files_of(snapshot) -> tuple[dict[str, bytes], dict[str, dict]]:
    """(file name -> bytes, manifest key -> {field: file name}) for a snapshot's extra layers."""
    files: dict[str, bytes] = {}
    entries: dict[str, dict] = {}
    sphere: Optional[SphereLayers] = getattr(snapshot, "sphere", None)
    if sphere is not None:
        files["sphere_image.png"] = _png(sphere.image)
        files["sphere_distance.npy"] = _npy(sphere.distance)
        files["sphere_known.png"] = _png(sphere.known.astype(np.uint8) * 255)
        entries["sphere"] = {"image": "sphere_image.png", "distance": "sphere_distance.npy",
                             "known": "sphere_known.png"}
    background: Optional[BackgroundLayers] = getattr(snapshot, "background", None)
    if background is not None:
        files["background_image.png"] = _png(background.image)
        files["background_modality.npy"] = _npy(background.modality)
        files["background_mask.png"] = _png(background.mask.astype(np.uint8) * 255)
        entries["background"] = {"image": "background_image.png", "modality": "background_modality.npy",
                                 "mask": "background_mask.png"}
    return files, entries


def manifest_entries(entries: dict[str, dict], folder: str, snapshot) -> dict:
    """The record fields naming the files inside the version's ``folder``."""
    out = {}
    for key, fields in entries.items():
        out[key] = {name: f"{folder}/{fname}" for name, fname in fields.items()}
        if key == "sphere":
            out[key]["projection"] = snapshot.sphere.projection()
    return out


def _mask(path) -> np.ndarray:
    from .image_files import read_image

    return read_image(path, SceneError)[..., 0] > 0.5


def _array(path, shape: tuple[int, ...]) -> np.ndarray:
    """A plain numeric .npy whose header says ``shape`` (checked before any data is read: a file
    claiming a huge array costs nothing)."""
    from .image_files import npy_header

    try:
        stored, dtype = npy_header(path)
    except (ValueError, OSError, EOFError) as exc:
        raise SceneError(f"{path} is not a readable array ({exc}); the layer is damaged") from None
    if dtype.fields is not None or dtype.kind not in "fiu" or tuple(stored[:len(shape)]) != shape or len(stored) > 3:
        raise SceneError(f"{path} has shape {tuple(stored)} ({dtype}), expected {shape}; the layer is damaged")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy reports damage in many shapes; all mean the same here
        raise SceneError(f"{path} is not a readable array ({exc}); the layer is damaged") from None
    if arr.dtype.kind not in "fiu" or arr.shape[:len(shape)] != shape:
        raise SceneError(f"{path} has shape {arr.shape} ({arr.dtype}), expected {shape}; the layer is damaged")
    return arr.astype(np.float32, copy=False)


def load_extras(scene, record: dict, band_shape: tuple[int, int]) -> dict:
    """The ``sphere`` and ``background`` of a version record, read through ``scene._existing``
    (which refuses paths leaving the scene folder); absent keys give nothing."""
    from .image_files import read_image

    out = {}
    entry = record.get("sphere")
    if isinstance(entry, dict):
        image = read_image(scene._existing(entry.get("image")), SceneError)
        distance = _array(scene._existing(entry.get("distance")), image.shape[:2])
        known = _mask(scene._existing(entry.get("known")))
        try:
            out["sphere"] = SphereLayers(image, distance, known)
        except ValueError as exc:
            raise SceneError(f"{scene.path}: version {record['version']}: {exc}") from None
    entry = record.get("background")
    if isinstance(entry, dict):
        image = read_image(scene._existing(entry.get("image")), SceneError)
        modality = _array(scene._existing(entry.get("modality")), band_shape)
        if modality.ndim == 2:
            modality = modality[..., None]
        try:
            out["background"] = BackgroundLayers(image, modality, _mask(scene._existing(entry.get("mask"))))
        except ValueError as exc:
            raise SceneError(f"{scene.path}: version {record['version']}: {exc}") from None
    return out
