"""A scene on disk: a folder with a versioned JSON manifest and one sub-folder of layers per version.

    fjord/
      scene.json          the manifest: format version and the list of versions
      v1/image.png        RGB, 8-bit
      v1/depth.npy        the modality, float32, lossless (loaded with allow_pickle=False)
      v1/depth.png        single-channel modalities: a 16-bit PNG of the value range
      v1/depth_preview.png  a colour-mapped preview from the modality plugin
      v2/...              each operation appends a version; earlier ones stay readable

A new version is written into a temporary folder that is renamed into place, and only then is the
manifest replaced (atomically), so an interruption leaves the scene at its previous version.
A manifest that points outside its folder is refused.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .atomic import atomic_write_text
from .errors import SceneError
from .layers import Snapshot
from .projection import CylindricalProjection

MANIFEST_NAME = "scene.json"
FORMAT_NAME = "worldgen-scene"
FORMAT_VERSION = 1
REQUIRED_RECORD_KEYS = ("version", "operation", "prompt", "seed", "backend", "modality", "projection", "layers")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_safe(value: Any) -> Any:
    """Make settings JSON-serialisable (paths, numpy scalars) without hiding what they were."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


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


def read_image(path: Path) -> np.ndarray:
    """An RGB image file as (H, W, 3) float32 in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise SceneError(f"{path} is not a readable image ({exc}); replace it with a PNG or JPEG") from None


class Scene:
    """A scene folder. Open with ``Scene.open``; make with ``Scene.create``."""

    def __init__(self, path: Path, manifest: dict) -> None:
        self.path = path
        self.manifest = manifest

    # Construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, snapshot: Snapshot, *, operation: str, prompt: str, seed: Optional[int],
               backend: str, backend_settings: dict, modality: str, negative_prompt: str = "",
               params: Optional[dict] = None) -> "Scene":
        path = Path(path)
        if (path / MANIFEST_NAME).exists():
            raise SceneError(f"{path} already holds a scene; choose another name or use `worldgen refine {path}`")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            scene = cls(path, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": _now(),
                               "versions": []})
            scene.add_version(snapshot, operation=operation, prompt=prompt, seed=seed, backend=backend,
                              backend_settings=backend_settings, modality=modality, negative_prompt=negative_prompt,
                              params=params)
        except BaseException:
            # A folder without a manifest is no scene: leave nothing rather than an empty shell.
            if created and not (path / MANIFEST_NAME).exists():
                shutil.rmtree(path, ignore_errors=True)
            raise
        return scene

    @classmethod
    def open(cls, path: str | Path) -> "Scene":
        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise SceneError(f"{path} is not a scene (no {MANIFEST_NAME}); create one with `worldgen pano`")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SceneError(f"{manifest_path} is not valid JSON ({exc}); restore it from a backup") from None
        scene = cls(path, manifest)
        scene._validate()
        return scene

    def _validate(self) -> None:
        m = self.manifest
        where = self.path / MANIFEST_NAME
        if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
            raise SceneError(f"{where} is not a worldgen scene manifest (format is not {FORMAT_NAME!r})")
        version = m.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise SceneError(f"{where} has no integer format_version; restore it from a backup")
        if version > FORMAT_VERSION:
            raise SceneError(f"{where} has format version {version}, newer than this worldgen reads "
                             f"({FORMAT_VERSION}); upgrade worldgen")
        versions = m.get("versions")
        if not isinstance(versions, list) or not versions:
            raise SceneError(f"{where} lists no versions; the scene is empty or damaged")
        for index, record in enumerate(versions, start=1):
            if not isinstance(record, dict):
                raise SceneError(f"{where}: version entry {index} is not an object")
            missing = [k for k in REQUIRED_RECORD_KEYS if k not in record]
            if missing:
                raise SceneError(f"{where}: version {index} lacks {', '.join(missing)}")
            if record["version"] != index:
                raise SceneError(f"{where}: versions are out of order at entry {index}")
            for key in ("layers", "previews", "geometry"):
                if not isinstance(record.get(key, {}), dict):
                    raise SceneError(f"{where}: version {index} {key} must be an object; restore it from a backup")
            for rel in list(record["layers"].values()) + list(record.get("previews", {}).values()):
                self._resolve(rel)
            try:
                CylindricalProjection.from_dict(record["projection"])
            except Exception as exc:
                raise SceneError(f"{where}: version {index} has a bad projection ({exc})") from None

    def _resolve(self, rel: Any) -> Path:
        """The absolute path of a manifest entry, refusing anything that leaves the scene folder."""
        if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or "\\" in rel:
            raise SceneError(f"{self.path / MANIFEST_NAME} names {rel!r}, which is not a relative path inside the scene")
        root = self.path.resolve()
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or target == root:
            raise SceneError(f"{self.path / MANIFEST_NAME} names {rel!r}, which leaves the scene folder; refusing it")
        return target

    # Reading ------------------------------------------------------------------------------
    @property
    def versions(self) -> list[dict]:
        return self.manifest["versions"]

    @property
    def current(self) -> int:
        return len(self.versions)

    def record(self, version: Optional[int] = None) -> dict:
        version = self.current if version is None else version
        if not 1 <= version <= self.current:
            raise SceneError(f"{self.path} has versions 1..{self.current}, not {version}; see `worldgen history {self.path}`")
        return self.versions[version - 1]

    def load(self, version: Optional[int] = None) -> Snapshot:
        record = self.record(version)
        projection = CylindricalProjection.from_dict(record["projection"])
        layers = record["layers"]
        if "image" not in layers:
            raise SceneError(f"{self.path}: version {record['version']} has no image layer")
        image = read_image(self._existing(layers["image"]))
        modalities = {}
        for name, rel in layers.items():
            if name == "image":
                continue
            try:
                arr = np.load(self._existing(rel), allow_pickle=False)
            except SceneError:
                raise
            except Exception as exc:
                raise SceneError(f"{self.path / rel} is not a readable array ({exc}); the layer is damaged") from None
            if arr.ndim == 2:
                arr = arr[..., None]
            modalities[name] = arr.astype(np.float32, copy=False)
        try:
            return Snapshot(image=image, modalities=modalities, projection=projection,
                            geometry=dict(record.get("geometry", {})), prompt=record.get("prompt", ""))
        except ValueError as exc:
            raise SceneError(f"{self.path}: version {record['version']} layers disagree with the manifest ({exc})") from None

    def _existing(self, rel: str) -> Path:
        path = self._resolve(rel)
        if not path.is_file():
            raise SceneError(f"{self.path} is missing its layer {rel}; restore it or pick an earlier version")
        return path

    # Writing ------------------------------------------------------------------------------
    def add_version(self, snapshot: Snapshot, *, operation: str, prompt: Optional[str] = None, seed: Optional[int] = None,
                    backend: Optional[str] = None, backend_settings: Optional[dict] = None,
                    modality: Optional[str] = None, negative_prompt: Optional[str] = None,
                    params: Optional[dict] = None) -> int:
        """Write ``snapshot`` as the next version and return its number. Fields left as None are
        inherited from the current version."""
        previous = self.versions[-1] if self.versions else {}
        number = len(self.versions) + 1
        folder = f"v{number}"
        files, previews = self._layer_files(snapshot)
        final = self.path / folder
        # Named before it exists (not mkdtemp): a Ctrl-C right after the mkdir can still clean it up.
        staging = self.path / f".{folder}.{secrets.token_hex(6)}.tmp"
        try:
            staging.mkdir()
            for rel, data in files.items():
                (staging / rel).write_bytes(data)
            if final.exists():  # left by an interrupted earlier attempt: never referenced by the manifest
                shutil.rmtree(final)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)  # never in the manifest (e.g. renamed just before a Ctrl-C)
            raise
        record = {
            "version": number,
            "operation": operation,
            "created": _now(),
            "parent": previous.get("version"),
            "prompt": prompt if prompt is not None else previous.get("prompt", ""),
            "negative_prompt": negative_prompt if negative_prompt is not None else previous.get("negative_prompt", ""),
            "seed": seed if seed is not None else previous.get("seed"),
            "backend": {"name": backend or previous.get("backend", {}).get("name", "unknown"),
                        "settings": _json_safe(backend_settings if backend_settings is not None
                                               else previous.get("backend", {}).get("settings", {}))},
            "modality": modality or previous.get("modality") or next(iter(snapshot.modalities), None),
            "projection": snapshot.projection.to_dict(),
            "size": list(snapshot.size),
            "geometry": _json_safe(snapshot.geometry),
            "layers": {name: f"{folder}/{fname}" for name, fname in self._layer_names(snapshot).items()},
            "previews": {name: f"{folder}/{fname}" for name, fname in previews.items()},
            "params": _json_safe(params or {}),
        }
        manifest = dict(self.manifest)
        manifest["versions"] = self.versions + [record]
        try:
            atomic_write_text(self.path / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        except BaseException:
            # Unless the new manifest reached the disk, the new folder is not part of the scene.
            if not self._manifest_on_disk_lists(number):
                shutil.rmtree(final, ignore_errors=True)
            raise
        self.manifest = manifest
        return number

    def _manifest_on_disk_lists(self, number: int) -> bool:
        try:
            versions = json.loads((self.path / MANIFEST_NAME).read_text(encoding="utf-8")).get("versions")
        except (OSError, ValueError, AttributeError):
            return False
        return isinstance(versions, list) and len(versions) >= number

    @staticmethod
    def _layer_names(snapshot: Snapshot) -> dict[str, str]:
        names = {"image": "image.png"}
        names.update({name: f"{name}.npy" for name in snapshot.modalities})
        return names

    def _layer_files(self, snapshot: Snapshot) -> tuple[dict[str, bytes], dict[str, str]]:
        files = {"image.png": encode_png(snapshot.image)}
        previews: dict[str, str] = {}
        for name, arr in snapshot.modalities.items():
            files[f"{name}.npy"] = encode_npy(arr)
            spec = _modality_spec(name)
            if spec is None:
                continue
            if arr.shape[-1] == 1:
                files[f"{name}.png"] = encode_png(to_uint16(arr[..., 0], spec.value_range))
                previews[f"{name}16"] = f"{name}.png"
            files[f"{name}_preview.png"] = encode_png(np.asarray(spec.preview(arr)))
            previews[name] = f"{name}_preview.png"
        return files, previews


def _modality_spec(name: str):
    """The registered modality spec, or None (the lossless layer is still written without it)."""
    from .registry import get_registry

    try:
        return get_registry().modality(name)
    except Exception:
        warnings.warn(f"modality {name!r} is not installed; writing its data without previews", stacklevel=3)
        return None
