"""The local model store: named JointNet checkpoints, their base models, and a default.

Location: $WORLDGEN_HOME, else $XDG_DATA_HOME/worldgen, else ~/.local/share/worldgen; the store
index is ``<root>/models.json`` (names -> entries, rewritten atomically) and zips unpack into
``<root>/models/NAME``.
Zip archives are unpacked into the store (safely: no member may land outside its folder, no
symlinks); folders are registered where they are, so multi-GB checkpoints are not copied.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from worldgen.scene.atomic import atomic_write_text
from worldgen.errors import ModelError, UserInputError
from worldgen.paths import model_store_root as store_root

from . import hub
from .weights import weight_hashes
from .archives import find_checkpoint, safe_extract
from .checkpoint_check import check_checkpoint_weights
from .convert import write_converted
from .loading import (BRANCH_DIRS, DEFAULT_MODALITY, WORLDGEN_META,
                      check_base_dir, check_checkpoint_dir, is_base_dir, is_checkpoint_dir, read_json, weights_file)

INDEX_VERSION = 1
# Always fullmatch: with match(), "$" also matches before a final newline, so "rgbd\n" was registered.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MODALITY_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass
class ModelEntry:
    name: str
    path: str                     # the checkpoint folder (holds unet/ and jointnet/)
    base: Optional[str] = None    # the base model folder; None: the checkpoint's own base/
    modality: str = "depth"
    inpaint: bool = False         # has masked-latent input
    managed: bool = False         # unpacked into the store (removed with the entry)
    added: str = ""
    # dtype name -> a copy of the checkpoint as safetensors in that dtype (``ModelStore.convert``);
    # entries from before conversions existed have none and load their original files.
    converted: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)  # relative weight file -> sha256, computed once at `add` (weights.py)
    license: Optional[str] = None  # the weights' licence (from the Hub card or --license), shown by `models list`

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.path)

    @property
    def base_dir(self) -> Optional[Path]:
        if self.base:
            return Path(self.base)
        own = Path(self.path) / "base"
        return own if is_base_dir(own) else None


# What each index field must be (bool is also an int in Python, so the types are exact enough here).
ENTRY_FIELD_TYPES = {"path": str, "base": (str, type(None)), "modality": str, "inpaint": bool,
                     "managed": bool, "added": str, "converted": dict}
CONVERTED_DIR = ".converted"  # <models>/.converted/NAME/DTYPE/{unet,jointnet}/


class ModelStore:
    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else store_root()
        self.models_dir = self.root / "models"
        self.index_path = self.root / "models.json"

    # index ------------------------------------------------------------------------------------
    def _read(self, check_default: bool = True) -> dict:
        """The index, checked field by field: a hand-edited or damaged index is a ModelError, never a crash."""
        if not self.index_path.exists():
            return {"version": INDEX_VERSION, "default": None, "models": {}}
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ModelError(f"{self.index_path} is corrupt; delete it and re-add your models "
                             f"with `worldgen models add`") from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ModelError(f"{self.index_path} is not a model index; delete it and re-add your models")
        default = data.get("default")
        if check_default and default is not None and not (isinstance(default, str) and default in data["models"]):
            raise ModelError(f"{self.index_path}: 'default' must name a registered model; "
                             f"run `worldgen models default --clear`, or fix or delete the file")
        for name, raw in data["models"].items():
            self._check_raw_entry(name, raw)
        return data

    def _check_raw_entry(self, name, raw) -> None:
        problem = None
        if not NAME_RE.fullmatch(name):
            problem = "is not a valid model name"
        elif not isinstance(raw, dict):
            problem = "is not an object"
        else:
            for key, types in ENTRY_FIELD_TYPES.items():
                if key in raw and not isinstance(raw[key], types):
                    problem = f"has a bad {key!r}"
                    break
            if problem is None and "path" not in raw:
                problem = "has no 'path'"
        if problem:
            raise ModelError(f"{self.index_path}: entry {name!r} {problem}; fix or delete the file "
                             f"and re-add the model with `worldgen models add`")

    def _write(self, data: dict) -> None:
        atomic_write_text(self.index_path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def _changing(self, check_default: bool = True):
        """The index, read, changed by the ``with`` block and rewritten under the store's writer lock: the
        scene lock's ``flock`` on the store folder, so parallel `models add` runs each see the others'
        entries instead of overwriting them (no lock file to go stale; a killed writer frees it)."""
        from worldgen.scene.lock import scene_lock

        self.root.mkdir(parents=True, exist_ok=True)
        with scene_lock(self.root):
            data = self._read(check_default)
            yield data
            self._write(data)

    def _entry(self, name: str, raw: dict) -> ModelEntry:
        fields = {k: raw[k] for k in ModelEntry.__dataclass_fields__ if k in raw and k != "name"}
        return ModelEntry(name=name, **fields)

    def entries(self) -> list[ModelEntry]:
        data = self._read()
        return [self._entry(name, raw) for name, raw in sorted(data["models"].items())]

    def get(self, name: str) -> Optional[ModelEntry]:
        raw = self._read()["models"].get(name)
        return None if raw is None else self._entry(name, raw)

    def default_name(self) -> Optional[str]:
        return self._read().get("default")

    def default(self) -> Optional[ModelEntry]:
        name = self.default_name()
        return self.get(name) if name else None

    # changes ------------------------------------------------------------------------------------
    def add(self, source, name: str, base=None, modality: Optional[str] = None,
            make_default: bool = False, license: Optional[str] = None) -> ModelEntry:
        """Register a checkpoint folder (in place) or zip (unpacked into the store) under ``name``."""
        if not NAME_RE.fullmatch(name or ""):
            raise UserInputError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (max 64), "
                                 f"starting with a letter or digit")
        if modality is not None and not MODALITY_RE.fullmatch(modality):
            raise UserInputError(f"modality {modality!r} is not a modality name like 'depth' or 'normal' "
                                 f"(lower-case letters, digits, '_' or '-')")
        if self.get(name) is not None:
            raise UserInputError(f"a model named {name!r} is already registered; choose another --name "
                                 f"or run `worldgen models remove {name}` first")
        source, base = hub.local_path(source), hub.local_path(base)  # Hub ids: their cached snapshot folders
        if not source.exists():
            raise UserInputError(f"{source} does not exist; pass a checkpoint folder, its .zip or a Hub id")
        base_path = check_base_dir(base.resolve()) if base else None
        license = license or hub.card_license(source)

        managed = source.is_file()
        if managed:
            checkpoint = self._unpack(source, name)
        else:
            found = find_checkpoint(source)
            if found is None:
                raise ModelError(f"{source} holds no JointNet checkpoint (a folder with unet/ and jointnet/); "
                                 f"point at the unpacked checkpoint or its .zip")
            checkpoint = found.resolve()
        try:
            check_checkpoint_dir(checkpoint)
            check_checkpoint_weights(checkpoint)  # a model that cannot load is never registered
            entry = ModelEntry(
                name=name, path=str(checkpoint), base=str(base_path) if base_path else None,
                modality=modality or checkpoint_modality(checkpoint),
                inpaint=_is_inpaint(checkpoint), managed=managed,
                added=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                weights=weight_hashes(checkpoint), license=license,
            )
            with self._changing() as data:
                if name in data["models"]:  # registered by a parallel `models add` since the check above
                    raise UserInputError(f"a model named {name!r} is already registered; choose another --name")
                data["models"][name] = {k: v for k, v in asdict(entry).items() if k != "name"}
                if make_default:
                    data["default"] = name
        except BaseException:
            if managed:
                shutil.rmtree(self.models_dir / name, ignore_errors=True)
            raise
        return entry

    def convert(self, name: str, dtype: str) -> Optional[Path]:
        """Write the checkpoint of ``name`` once as safetensors in ``dtype`` (the compute dtype) into
        the store, so a run reads it straight onto the GPU instead of unpickling float32 and casting.
        The original files are only read. Returns the copy's folder, or None when there is nothing to
        gain (the weights are safetensors already)."""
        entry = self.get(name)
        if entry is None:
            raise UserInputError(f"no model named {name!r}; see `worldgen models list`")
        checkpoint = check_checkpoint_dir(entry.checkpoint_dir)
        if all(weights_file(checkpoint / sub).suffix == ".safetensors" for sub in BRANCH_DIRS):
            return None
        final = self.models_dir / CONVERTED_DIR / name / dtype
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dtype}.", suffix=".partial", dir=final.parent))
        try:
            write_converted(checkpoint, staging, dtype)
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)  # the copy appears whole or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._changing() as data:
            if name not in data["models"]:
                raise UserInputError(f"model {name!r} was removed while it was being converted")
            data["models"][name].setdefault("converted", {})[dtype] = str(final.resolve())
        return final

    def _unpack(self, archive: Path, name: str) -> Path:
        if not zipfile.is_zipfile(archive):
            raise UserInputError(f"{archive} is neither a folder nor a zip; pass the checkpoint folder or its .zip")
        final = self.models_dir / name
        if final.exists():
            raise UserInputError(f"{final} already exists; remove it or choose another --name")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=self.models_dir))
        try:
            safe_extract(archive, staging)
            found = find_checkpoint(staging)
            if found is None:
                raise ModelError(f"{archive} holds no JointNet checkpoint (unet/ and jointnet/ folders); "
                                 f"is it the right download?")
            relative = found.relative_to(staging)
            os.replace(staging, final)  # the whole unpacked tree appears at once
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return (final / relative).resolve()

    def remove(self, name: str) -> ModelEntry:
        with self._changing() as data:
            if name not in data["models"]:
                raise UserInputError(f"no model named {name!r}; see `worldgen models list`")
            entry = self._entry(name, data["models"].pop(name))
            if data.get("default") == name:
                data["default"] = None
        if entry.managed:
            # Only ever a folder the store unpacked itself (names are checked, so this stays inside).
            shutil.rmtree(self.models_dir / entry.name, ignore_errors=True)
        shutil.rmtree(self.models_dir / CONVERTED_DIR / entry.name, ignore_errors=True)
        return entry

    def set_default(self, name: Optional[str]) -> None:
        with self._changing(check_default=False) as data:  # so `models default --clear` repairs a bad default
            if name is not None and name not in data["models"]:
                raise UserInputError(f"no model named {name!r}; register it with "
                                     f"`worldgen models add PATH --name {name}`")
            data["default"] = name


def converted_weights(checkpoint_dir, dtype: str, store: Optional[ModelStore] = None) -> Optional[Path]:
    """The store's safetensors copy of ``checkpoint_dir`` in ``dtype``, or None (then the original
    files load, as for entries registered before conversion existed)."""
    checkpoint_dir = Path(checkpoint_dir).resolve()
    try:
        entries = (store or ModelStore()).entries()
    except ModelError:
        return None
    for entry in entries:
        folder = entry.converted.get(dtype) if isinstance(entry.converted, dict) else None
        if folder and Path(entry.path).resolve() == checkpoint_dir and is_checkpoint_dir(Path(folder)):
            return Path(folder)
    return None


def registered_modality(checkpoint_dir) -> Optional[str]:
    """The modality registered for ``checkpoint_dir`` with `worldgen models add`, or None."""
    checkpoint_dir = Path(checkpoint_dir).resolve()
    try:
        entries = ModelStore().entries()
    except ModelError:
        return None
    return next((e.modality for e in entries if e.modality and Path(e.path).resolve() == checkpoint_dir), None)


def checkpoint_modality(checkpoint_dir: Path) -> str:
    """The modality a checkpoint's first branch makes: what `worldgen models add --modality` registered
    for it (a flag overrides), else ``worldgen.json``'s, else depth (official checkpoints)."""
    registered = registered_modality(checkpoint_dir)
    if registered:
        return registered
    meta_path = Path(checkpoint_dir) / WORLDGEN_META
    if not meta_path.exists():
        return DEFAULT_MODALITY
    meta = read_json(meta_path, "checkpoint metadata")
    name = meta.get("modality", DEFAULT_MODALITY) if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"{meta_path}: 'modality' must be a name like \"depth\"; fix or delete the file")
    return name.strip()


def _is_inpaint(checkpoint: Path) -> bool:
    return bool(read_json(checkpoint / "unet" / "config.json", "JointNet branch unet").get("has_masked_latent_input"))


# ---- what the rest of worldgen calls --------------------------------------------------------------

def default_model(store: Optional[ModelStore] = None) -> Optional[ModelEntry]:
    """The registered default JointNet model, or None (then the procedural backend is the default)."""
    return (store or ModelStore()).default()


def resolve_model(name_or_path, base=None, store: Optional[ModelStore] = None) -> tuple[Path, Path]:
    """``(checkpoint_dir, base_dir)`` for a checkpoint folder or a registered model name.

    The base is, in order: ``base``; the store entry's base; the checkpoint's own ``base/`` (folders
    from ``worldgen models tiny``). Without any, ModelError says how to provide one.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    entry = None
    if path.exists():
        checkpoint = find_checkpoint(path, max_depth=1) if path.is_dir() else None
        if checkpoint is None:
            raise ModelError(f"{path} is not a JointNet checkpoint folder (with unet/ and jointnet/); "
                             f"for a .zip run `worldgen models add {path} --name NAME` first")
        checkpoint = check_checkpoint_dir(checkpoint.resolve())
    else:
        store = store or ModelStore()
        entry = store.get(text)
        if entry is None:
            known = ", ".join(e.name for e in store.entries()) or "none registered"
            raise ModelError(f"no model folder or registered model named {text!r} (registered: {known}); "
                             f"register one with `worldgen models add PATH_OR_ZIP --name NAME`")
        checkpoint = check_checkpoint_dir(entry.checkpoint_dir)

    if base is not None:
        return checkpoint, check_base_dir(hub.local_path(base).resolve())  # a folder or a cached Hub id
    candidates = []
    if entry is not None and entry.base:
        candidates.append(Path(entry.base))
    candidates.append(checkpoint / "base")
    for candidate in candidates:
        if is_base_dir(candidate):
            return checkpoint, candidate.resolve()
    if entry is not None and entry.base:
        raise ModelError(f"the base model {entry.base} registered for {entry.name!r} is missing; pass --base PATH "
                         f"or re-register with `worldgen models add ... --base PATH`")
    raise ModelError(f"{text} needs its base model (stabilityai/stable-diffusion-2-1-base in diffusers layout); "
                     f"pass --base PATH, or register it with `worldgen models add {text} --name NAME --base PATH`")


def resolve(name: Optional[str], store: Optional[ModelStore] = None) -> Optional[Path]:
    """The checkpoint folder of a registered name (None: of the default model), or None if unknown."""
    store = store or ModelStore()
    entry = store.default() if name is None else store.get(str(name))
    return entry.checkpoint_dir if entry is not None else None


def base_for(checkpoint_dir, store: Optional[ModelStore] = None) -> Optional[Path]:
    """The base of a checkpoint folder: the one registered with it, else its own base/, else None."""
    checkpoint_dir = Path(checkpoint_dir).expanduser().resolve()
    for entry in (store or ModelStore()).entries():
        if Path(entry.path).resolve() == checkpoint_dir and entry.base_dir is not None and is_base_dir(entry.base_dir):
            return entry.base_dir
    own = checkpoint_dir / "base"
    return own if is_base_dir(own) else None
