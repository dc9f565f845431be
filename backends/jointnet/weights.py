"""The weights' fingerprints: SHA-256 of each weight file, computed once when a model is registered
(`worldgen models add`) and kept in the model index, so every scene can name exactly which weights
made it without hashing gigabytes on each run."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_hashes(checkpoint: Path) -> dict:
    """{relative path: sha256} of every weight file under ``checkpoint`` (sorted, symlinks followed
    only inside it)."""
    checkpoint = Path(checkpoint)
    found = {}
    for path in sorted(checkpoint.rglob("*")):
        if path.suffix in WEIGHT_SUFFIXES and path.is_file() and checkpoint.resolve() in path.resolve().parents:
            found[path.relative_to(checkpoint).as_posix()] = file_sha256(path)
    return found


def registered(model_dir) -> Optional[object]:
    """The store entry whose checkpoint is ``model_dir`` (or whose name it is), else None."""
    from .store import ModelStore

    if model_dir is None:
        return None
    store = ModelStore()
    by_name = store.get(str(model_dir)) if "/" not in str(model_dir) else None
    if by_name is not None:
        return by_name
    try:
        wanted = Path(model_dir).resolve()
    except OSError:
        return None
    return next((e for e in store.entries() if Path(e.path).resolve() == wanted), None)
