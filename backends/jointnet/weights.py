"""The weights' fingerprints: SHA-256 of each weight file, computed once when a model is registered
(`worldgen models add`) and kept in the model index, so every scene can name exactly which weights
made it without hashing gigabytes on each run."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_hashes(checkpoint: Path) -> dict:
    """{relative path: sha256} of every weight file under ``checkpoint`` (sorted). A file that is a
    symlink is hashed through it (the Hugging Face cache keeps each snapshot file as a link to a blob);
    only regular files are read, never a device or a pipe."""
    checkpoint = Path(checkpoint)
    found = {}
    for path in sorted(checkpoint.rglob("*")):
        if path.suffix in WEIGHT_SUFFIXES and path.is_file():
            found[path.relative_to(checkpoint).as_posix()] = file_sha256(path)
    return found
