"""The server's output root: the only folder a job may write into.

A job names a folder (``dir``, already checked to be relative parts without ``..``) and a world
name; the world becomes ``ROOT/DIR/NAME/`` (the scene) and ``ROOT/DIR/NAME.glb``. Resolving through
symlinks must stay inside ROOT, checked when the job is submitted and again when it is published.
A world is made in ``ROOT/.serve/tmp/JOB/`` and moved into place GLB first, scene folder last (as
`worldgen batch` does), so a scene.json in ROOT always has its GLB, and an interrupted or failed
job leaves nothing in ROOT but its staging folder, which the next start-up removes.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserInputError

STATE_DIR = ".serve"  # never a job's dir or name: those start with a letter or digit


class NameTaken(UserInputError):
    """The world's scene folder or GLB exists already, or a queued job will write it."""


@dataclass(frozen=True)
class Target:
    """Where a job's world goes: ``folder`` (absolute, inside the root) and the world's name."""

    folder: Path
    name: str

    @property
    def scene(self) -> Path:
        return self.folder / self.name

    @property
    def glb(self) -> Path:
        return self.folder / f"{self.name}.glb"


class OutputRoot:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserInputError(f"output root {path} is a file; pass a folder with --out")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path.resolve()
        self._reserved: set[Path] = set()
        self._lock = threading.Lock()
        # Held while a world moves into place: shutdown takes it, so it never stops half-way.
        self.publish_lock = threading.Lock()

    # Staging ----------------------------------------------------------------------------------
    @property
    def staging_root(self) -> Path:
        return self.path / STATE_DIR / "tmp"

    def staging(self, job_id: str) -> Path:
        folder = self.staging_root / job_id
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    def clean_staging(self) -> None:
        """Remove what interrupted jobs left (only ever inside ROOT/.serve/tmp)."""
        shutil.rmtree(self.staging_root, ignore_errors=True)

    # Targets ----------------------------------------------------------------------------------
    def inside(self, folder: Path) -> Path:
        """``folder`` resolved; refused unless it stays inside the root (a symlink may not lead out)."""
        resolved = folder.resolve()
        if not resolved.is_relative_to(self.path):
            relative = folder.relative_to(self.path) if folder.is_relative_to(self.path) else folder
            raise UserInputError(f"dir {str(relative)!r} leads outside the server's output root (through a symlink); "
                                 f"pick another dir")
        return resolved

    def reserve(self, parts: tuple[str, ...], name: str) -> Target:
        """Claim DIR/NAME for one job; ``NameTaken`` if it exists or another job holds it."""
        target = Target(self.inside(self.path.joinpath(*parts)), name)
        for existing in target.folder.parents:
            if existing == self.path:
                break
            if existing.exists() and not existing.is_dir():
                raise UserInputError(f"dir {'/'.join(parts)!r}: {existing.relative_to(self.path)} is a file; "
                                     f"pick another dir")
        if target.folder.exists() and not target.folder.is_dir():
            raise UserInputError(f"dir {'/'.join(parts)!r} is a file under the output root; pick another dir")
        with self._lock:
            taken = {target.scene, target.glb} & self._reserved
            for path in (target.scene, target.glb):
                if path in taken or os.path.lexists(path):
                    raise NameTaken(f"{path.relative_to(self.path)} already exists on the server (or a queued job "
                                    f"makes it); pick another name, or leave name out for a fresh one")
            self._reserved.update((target.scene, target.glb))
        return target

    def release(self, target: Target) -> None:
        with self._lock:
            self._reserved.difference_update((target.scene, target.glb))

    def publish(self, target: Target, scene_tmp: Path, glb_tmp: Path) -> list[str]:
        """Move a finished world from staging into place; returns its files relative to DIR."""
        with self.publish_lock:
            target.folder.mkdir(parents=True, exist_ok=True)
            if self.inside(target.folder) != target.folder:  # a symlink appeared since the job was submitted
                raise UserInputError(f"{target.folder} changed while the job ran; pick another dir")
            for path in (target.scene, target.glb):
                if os.path.lexists(path):
                    raise NameTaken(f"{path.relative_to(self.path)} appeared while the job ran; pick another name")
            os.replace(glb_tmp, target.glb)  # GLB first: a scene in the root always has its GLB
            os.rename(scene_tmp, target.scene)
        return world_files(target)


def world_files(target: Target) -> list[str]:
    """Every regular file of the world (scene folder and GLB) relative to its folder, sorted; the
    server serves exactly these, so a URL can never name anything else."""
    files = []
    for folder, dirs, names in os.walk(target.scene):  # os.walk does not follow symlinked folders
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                files.append(path.relative_to(target.folder).as_posix())
    return sorted(files) + [target.glb.name]


def file_identity(path: Path) -> str:
    """"device:inode:size" of a file: a client on the same machine that finds this identity at the
    server's path has the very file, and copies it instead of downloading it."""
    st = os.stat(path, follow_symlinks=False)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}"
