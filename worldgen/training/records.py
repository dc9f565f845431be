"""Finding the training examples of a data folder: its images (in sub-folders too), each one's
caption (a sidecar ``NAME.txt`` or a line of ``metadata.jsonl``) and, optionally, its modality file.
Paths from the manifest never leave the folder. See ``data.py`` for the file conventions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from ..errors import UserInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MANIFEST_NAME = "metadata.jsonl"
CAPTION_KEYS = ("text", "caption", "prompt")
FILE_KEYS = ("file_name", "image", "file")


@dataclass(frozen=True)
class Record:
    """One training example before it is read: where its files are and its caption."""

    image: Path
    caption: str
    modality: Optional[Path] = None  # an explicit modality file, or None to look for a sidecar


# -- finding the records -----------------------------------------------------------------------
def _inside(root: Path, rel: str, what: str) -> Path:
    """``root / rel``, refused when it escapes ``root`` (absolute paths, ``..``, symlinks out)."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise UserInputError(f"{MANIFEST_NAME}: {what} {rel!r} points outside {root}; use paths inside the data folder")
    return path


def _is_sidecar(path: Path, modality_names: tuple[str, ...]) -> bool:
    """``foo.depth.png`` is a modality file, not a training image."""
    inner = Path(path.stem).suffix.lstrip(".")
    return bool(inner) and inner in modality_names


def _walk_images(root: Path, modality_names: tuple[str, ...], sort: bool) -> Iterator[Path]:
    """Image files under ``root``, skipping hidden entries (caches) and modality sidecars.

    ``sort=False`` keeps the file system's own order (stable while the folder is unchanged), so a
    huge folder is walked without holding its listing in memory.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            entries = sorted(entries, key=lambda e: e.name) if sort else entries
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    subfolders.append(Path(entry.path))
                elif entry.name.lower().endswith(IMAGE_SUFFIXES):
                    path = Path(entry.path)
                    if not _is_sidecar(path, modality_names):
                        yield path
        stack.extend(reversed(subfolders))


def _sidecar_caption(image: Path) -> Optional[str]:
    path = image.with_suffix(".txt")
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    return None


def _manifest_lines(root: Path) -> Iterator[tuple[int, dict]]:
    with open(root / MANIFEST_NAME, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserInputError(f"{root / MANIFEST_NAME} line {number} is not JSON ({exc.msg}); fix or remove it") from None
            if not isinstance(entry, dict):
                raise UserInputError(f"{root / MANIFEST_NAME} line {number} must be a JSON object with file_name and text")
            yield number, entry


def _record_from_manifest(root: Path, number: int, entry: dict, modality: str) -> Record:
    rel = next((entry[k] for k in FILE_KEYS if isinstance(entry.get(k), str)), None)
    if rel is None:
        raise UserInputError(f"{root / MANIFEST_NAME} line {number} has no file_name; add the image's relative path")
    image = _inside(root, rel, "file_name")
    caption = next((entry[k] for k in CAPTION_KEYS if isinstance(entry.get(k), str)), None)
    if caption is None:
        caption = _sidecar_caption(image)
    if caption is None:
        raise UserInputError(f"{root / MANIFEST_NAME} line {number} ({rel}) has no caption; add a \"text\" field")
    mod = entry.get(modality)
    mod_path = _inside(root, mod, modality) if isinstance(mod, str) else None
    return Record(image, caption.strip(), mod_path)


def iter_records(root: Path, modality: str, modality_names: tuple[str, ...], sort: bool = False) -> Iterator[Record]:
    """Records in file order, read lazily (the manifest if there is one, else the folder)."""
    names = tuple(sorted(set(modality_names) | {modality}))
    if (root / MANIFEST_NAME).is_file():
        for number, entry in _manifest_lines(root):
            yield _record_from_manifest(root, number, entry, modality)
        return
    for image in _walk_images(root, names, sort=sort):
        caption = _sidecar_caption(image)
        if caption is None:
            raise UserInputError(
                f"{image} has no caption; add {image.with_suffix('.txt').name} next to it or a {MANIFEST_NAME}"
            )
        yield Record(image, caption)


def scan_records(root: Path, modality: str, modality_names: tuple[str, ...] = ()) -> list[Record]:
    """Every record of a folder, in a fixed order (map mode)."""
    records = list(iter_records(root, modality, modality_names, sort=True))
    if not records:
        raise UserInputError(
            f"{root} has no training images; add PNG/JPEG images with a caption each (NAME.txt or {MANIFEST_NAME})"
        )
    return records
