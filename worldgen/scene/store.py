"""A scene on disk: a folder with a versioned JSON manifest and one sub-folder of layers per version.

    fjord/
      scene.json          the manifest: format version and the list of versions
      v1/image.png        RGB, 8-bit
      v1/depth.npy        the modality, float32, lossless (loaded with allow_pickle=False)
      v1/depth.png        single-channel modalities: a 16-bit PNG of the value range
      v1/depth_preview.png  a colour-mapped preview from the modality plugin
      v2/...              each operation appends a version; earlier ones stay readable

A new version is computed without any lock, written into a hidden staging folder named after its
process, and only then committed under the scene's writer lock (``scene_lock``): re-read the
manifest, take the next version number and the next free ``vN/`` name, rename the staging folder
to it, replace the manifest atomically. So concurrent writers each get their own version, an
interruption leaves the scene at its previous version, and nothing is ever deleted that this
process did not stage: a ``vN/`` the manifest does not list (a user's folder, a dangling link) is
skipped, never replaced. A manifest that points outside its folder, or whose fields have the wrong
types, is refused with one line.
"""

from __future__ import annotations

from ..provenance import describe

import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import jsonfiles
from .atomic import atomic_write_text
from ..errors import SceneError, UserInputError
from .fs_errors import named
from .snapshot import Snapshot
from ..geometry.projection import CylindricalProjection
from .image_files import encode_npy, encode_png, npy_header, read_image, to_uint16
from .lock import is_abandoned, scene_lock, staging_name
from .manifest import (FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, RECORD_ORDER, check_manifest, is_int, json_safe,
                       now_utc, short, show)


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
        if os.path.lexists(path) and not path.is_dir():
            raise UserInputError(f"{path} exists and is not a folder; choose another name for the scene")
        created = not path.exists()
        scene = cls(path, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": now_utc(),
                           "versions": []})
        try:
            path.mkdir(parents=True, exist_ok=True)
            scene.add_version(snapshot, operation=operation, prompt=prompt, seed=seed, backend=backend,
                              backend_settings=backend_settings, modality=modality, negative_prompt=negative_prompt,
                              params=params)
        except BaseException:
            # A folder without a manifest is no scene: remove it if this process made it and it is
            # empty (another writer's staging folder, or anything else, keeps it).
            if created and not (path / MANIFEST_NAME).exists():
                try:
                    path.rmdir()
                except OSError:
                    pass
            raise
        return scene

    @classmethod
    def open(cls, path: str | Path) -> "Scene":
        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if os.path.islink(path) and not path.exists():
            raise SceneError(f"{path} is a dangling symbolic link; point it at a scene folder or remove it")
        if not manifest_path.is_file():
            raise SceneError(f"{path} is not a scene (no {MANIFEST_NAME}); create one with `worldgen pano`")
        try:
            manifest = jsonfiles.loads(manifest_path.read_bytes())
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and too-deep nesting are ValueErrors
            raise SceneError(f"{manifest_path} is not valid JSON ({short(exc)}); restore it from a backup") from None
        scene = cls(path, manifest)
        scene._validate()
        return scene

    def _validate(self) -> None:
        check_manifest(self.manifest, self.path / MANIFEST_NAME, self._resolve)

    def _resolve(self, rel: Any) -> Path:
        """The absolute path of a manifest entry, refusing anything that leaves the scene folder."""
        if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or "\\" in rel or "\0" in rel:
            raise SceneError(f"{self.path / MANIFEST_NAME} names {show(rel)}, which is not a relative path inside the scene")
        root = self.path.resolve()
        try:
            target = (root / rel).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise SceneError(f"{self.path / MANIFEST_NAME} names {show(rel)}, which cannot be resolved ({short(exc)})") from None
        if not target.is_relative_to(root) or target == root:
            raise SceneError(f"{self.path / MANIFEST_NAME} names {show(rel)}, which leaves the scene folder; refusing it")
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
        if not is_int(version) or not 1 <= version <= self.current:
            raise SceneError(f"{self.path} has versions 1..{self.current}, not {version}; see `worldgen history {self.path}`")
        return self.versions[version - 1]

    def load(self, version: Optional[int] = None) -> Snapshot:
        record = self.record(version)
        projection = CylindricalProjection.from_dict(record["projection"])
        layers = record["layers"]
        if "image" not in layers:
            raise SceneError(f"{self.path}: version {record['version']} has no image layer")
        image = read_image(self._existing(layers["image"]), SceneError)
        modalities = {}
        for name, rel in layers.items():
            if name == "image":
                continue
            modalities[name] = self._read_layer(rel, projection)
        try:
            from .extra_layers import load_extras

            return Snapshot(image=image, modalities=modalities, projection=projection,
                            geometry=dict(record.get("geometry", {})), prompt=record.get("prompt", ""),
                            **load_extras(self, record, (projection.height, projection.width)))
        except ValueError as exc:
            raise SceneError(f"{self.path}: version {record['version']} layers disagree with the manifest ({exc})") from None

    def _read_layer(self, rel: str, projection: CylindricalProjection) -> np.ndarray:
        """A modality layer: a plain numeric .npy of the projection's size (its header is checked
        before the data is read, so a file claiming a huge or non-numeric array costs nothing)."""
        path = self._existing(rel)
        where = self.path / rel
        expected = (projection.height, projection.width)
        try:
            shape, dtype = npy_header(path)
        except (ValueError, OSError, EOFError) as exc:
            raise SceneError(f"{where} is not a readable array ({short(exc)}); the layer is damaged") from None
        if dtype.fields is not None or dtype.kind not in "fiu":
            raise SceneError(f"{where} is not a readable array (it holds {dtype} values, not numbers); the layer "
                             f"is damaged, restore it or pick an earlier version")
        if tuple(shape[:2]) != expected or len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 16):
            raise SceneError(f"{where} has shape {tuple(shape)}: the layers disagree with the manifest "
                             f"({expected[1]}x{expected[0]}, as (H, W[, C])); the layer is damaged")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy reports damaged data in many shapes; all mean the same here
            raise SceneError(f"{where} is not a readable array ({short(exc)}); the layer is damaged") from None
        if arr.ndim == 2:
            arr = arr[..., None]
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise SceneError(f"{where} holds NaN or infinite values; the layer is damaged, pick an earlier version")
        return arr

    def _existing(self, rel: str) -> Path:
        path = self._resolve(rel)
        if not path.is_file():
            raise SceneError(f"{self.path} is missing its layer {rel}; restore it or pick an earlier version")
        return path

    # Writing ------------------------------------------------------------------------------
    def add_version(self, snapshot: Snapshot, *, operation: str, prompt: Optional[str] = None, seed: Optional[int] = None,
                    backend: Optional[str] = None, backend_settings: Optional[dict] = None,
                    modality: Optional[str] = None, negative_prompt: Optional[str] = None,
                    params: Optional[dict] = None, parent: Optional[int] = None) -> int:
        """Write ``snapshot`` as the next version and return its number.

        ``parent`` is the version the work started from (default: this object's current version,
        i.e. the one ``load()`` returned); it is recorded, and fields left as None are inherited
        from it. The number is claimed at commit time, under the scene lock: another process may
        have added versions meanwhile, and then this one simply comes after them."""
        parent = parent if parent is not None else (self.current or None)
        _refuse_non_finite(snapshot, self.path)
        previous = self.record(parent) if parent else {}
        files, previews = self._layer_files(snapshot)
        from .extra_layers import files_of

        extra_files, extra_entries = files_of(snapshot)
        files.update(extra_files)
        fields = {
            "operation": operation,
            "parent": parent,
            "prompt": prompt if prompt is not None else previous.get("prompt", ""),
            "negative_prompt": negative_prompt if negative_prompt is not None else previous.get("negative_prompt", ""),
            "seed": seed if seed is not None else previous.get("seed"),
            "backend": {"name": backend or previous.get("backend", {}).get("name", "unknown"),
                        "settings": json_safe(backend_settings if backend_settings is not None
                                               else previous.get("backend", {}).get("settings", {}))},
            "modality": modality or previous.get("modality") or next(iter(snapshot.modalities), None),
            "projection": snapshot.projection.to_dict(),
            "size": list(snapshot.size),
            "geometry": json_safe(snapshot.geometry),
            "params": json_safe(params or {}),
        }
        fields["provenance"] = json_safe(describe(fields["backend"]["name"], fields["backend"]["settings"],
                                                  fields["params"]))
        # Named before it exists (not mkdtemp): a Ctrl-C right after the mkdir can still clean it up;
        # named after this process: a later writer can prove it abandoned if this one is SIGKILLed.
        staging = self.path / staging_name(secrets.token_hex(6))
        try:
            staging.mkdir()
            # An owner mark travels with the folder when it is renamed to vN: if this process is killed
            # between that rename and the manifest, a later writer can prove the vN abandoned.
            (staging / staging.name).write_bytes(b"")
            for rel, data in files.items():
                try:
                    (staging / rel).write_bytes(data)
                except OSError as exc:  # name the scene, not the hidden staging folder
                    raise named(exc, self.path / rel) from None
            with scene_lock(self.path):
                return self._commit(staging, fields, self._layer_names(snapshot), previews, (extra_entries, snapshot))
        finally:
            # Only ever this process's own staging folder (after a commit it no longer exists).
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, fields: dict, layer_names: dict, previews: dict, extras=({}, None)) -> int:
        """Under the lock: claim the next number and a free folder name, rename, replace the manifest."""
        manifest_path = self.path / MANIFEST_NAME
        creating = not self.versions
        if creating:
            if os.path.lexists(manifest_path):
                raise SceneError(f"{self.path} already holds a scene (written by another process meanwhile); "
                                 f"choose another name or use `worldgen refine {self.path}`")
            manifest = dict(self.manifest)
        else:
            manifest = Scene.open(self.path).manifest  # the latest on disk: others may have committed
        versions = list(manifest["versions"])
        self._sweep_abandoned(versions)
        number = len(versions) + 1
        folder = self._free_folder(number, versions)
        record = {"version": number, "created": now_utc(), **fields,
                  "layers": {name: f"{folder}/{fname}" for name, fname in layer_names.items()},
                  "previews": {name: f"{folder}/{fname}" for name, fname in previews.items()}}
        from .extra_layers import manifest_entries

        record.update(manifest_entries(extras[0], folder, extras[1]))
        record = {key: record[key] for key in RECORD_ORDER if key in record}
        manifest["versions"] = versions + [record]
        # Serialised before anything moves: a value JSON cannot hold stops here with nothing changed.
        text = jsonfiles.dumps(jsonfiles.finite_or_none(manifest), indent=2) + "\n"
        final = self.path / folder
        os.rename(staging, final)
        try:
            atomic_write_text(manifest_path, text)
        except BaseException:
            # This process staged and renamed ``final``; unless the new manifest reached the disk, it is
            # not part of the scene, so it goes back to being our staging folder (removed by the caller).
            if not self._manifest_on_disk_lists(number, folder):
                try:
                    os.rename(final, staging)
                except OSError:
                    pass
            raise
        try:
            (final / staging.name).unlink()  # committed: no longer anyone's staging
        except OSError:
            pass
        self.manifest = manifest
        return number

    def _free_folder(self, number: int, versions: list) -> str:
        """``vN`` for the first N >= number that nothing occupies: not on disk (not even as a dangling
        link) and not used by any listed version. A folder the manifest does not list is skipped, not
        replaced: it may be a user's, or an interrupted write whose content someone still wants."""
        used = set()
        for record in versions:
            for rel in list(record.get("layers", {}).values()) + list(record.get("previews", {}).values()):
                used.add(str(rel).split("/")[0])
        n = number
        while f"v{n}" in used or os.path.lexists(self.path / f"v{n}"):
            n += 1
        return f"v{n}"

    def _sweep_abandoned(self, versions: list) -> None:
        """Remove what a writer SIGKILLed mid-commit left, where its process is provably gone: its
        staging folder, or a ``vN/`` it had renamed but not yet listed (it still holds the owner mark).
        Called under the lock. A folder without such a mark (a user's) is never touched."""
        try:
            entries = list(self.path.iterdir())
        except OSError:
            return
        listed = {str(rel).split("/")[0] for record in versions
                  for rel in list(record.get("layers", {}).values()) + list(record.get("previews", {}).values())}
        for entry in entries:
            if entry.is_symlink() or not entry.is_dir():
                continue
            if entry.name.endswith(".tmp") and is_abandoned(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith("v") and entry.name[1:].isdigit():
                marks = [p for p in entry.iterdir() if p.name.endswith(".tmp") and is_abandoned(p.name)]
                if marks and entry.name not in listed:
                    shutil.rmtree(entry, ignore_errors=True)
                for mark in marks if entry.name in listed else []:
                    mark.unlink(missing_ok=True)

    def _manifest_on_disk_lists(self, number: int, folder: str) -> bool:
        try:
            versions = jsonfiles.loads((self.path / MANIFEST_NAME).read_bytes()).get("versions")
            return (isinstance(versions, list) and len(versions) >= number
                    and str(versions[number - 1].get("layers", {}).get("image", "")).startswith(folder + "/"))
        except (OSError, ValueError, AttributeError, TypeError):
            return False

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


def _refuse_non_finite(snapshot: Snapshot, path: Path) -> None:
    """Never commit a layer with NaN or inf: every later command would refuse the version (reading
    checks it), so a numerical fault must fail the command that made it, before anything is written."""
    from ..numerics import NumericalError

    for name, arr in [("image", snapshot.image), *snapshot.modalities.items()]:
        arr = np.asarray(arr)
        if not np.issubdtype(arr.dtype, np.inexact):
            continue
        bad = arr.size - int(np.isfinite(arr).sum())
        if bad:
            raise NumericalError(f"the new version of {path} has NaN or infinite values in {name} "
                                 f"({100 * bad / arr.size:.3g}% of values); nothing was written. The computation "
                                 f"went wrong: rerun with --dtype float32, or with other region weights or guidance")


def _modality_spec(name: str):
    """The registered modality spec, or None (the lossless layer is still written without it)."""
    from ..registry import get_registry

    try:
        return get_registry().modality(name)
    except Exception:
        warnings.warn(f"modality {name!r} is not installed; writing its data without previews", stacklevel=3)
        return None
