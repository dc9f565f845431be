"""The server's output root: the only folder a job may write into.

A job names a folder (``dir``, already checked to be relative parts without ``..``) and a world
name; the world becomes ``ROOT/DIR/NAME/`` (the scene) and ``ROOT/DIR/NAME.glb``. Resolving through
symlinks must stay inside ROOT, checked when the job is submitted and again when it is published.
A world is made in ``ROOT/.serve/tmp/JOB/`` and moved into place GLB first, scene folder last (as
`worldgen batch` does), so a scene.json in ROOT always has its GLB, and an interrupted or failed
job leaves nothing in ROOT but its staging folder, which the next start-up removes.

Links inside the root are never followed when the server cleans, creates, publishes or serves:
folders are walked one component at a time from the root's own descriptor with ``O_NOFOLLOW``
(``open_dir``), so a symlink swapped in for ``.serve``, ``DIR`` or ``NAME/v1`` is refused, not
followed out of the root.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import UserInputError

STATE_DIR = ".serve"  # never a job's dir or name: those start with a letter or digit


class NameTaken(UserInputError):
    """The world's scene folder or GLB exists already, or a queued job will write it."""


class LinkRefused(UserInputError):
    """A path inside the output root is a symlink (or not a folder) where the server needs a folder."""


NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


@contextmanager
def open_dir(root: Path, parts: Sequence[str], create: bool = False) -> Iterator[int]:
    """A descriptor of ROOT/PARTS reached without following any link (each part opened with
    O_NOFOLLOW relative to the previous one); ``create`` makes missing folders on the way."""
    fd = os.open(root, NOFOLLOW_DIR)
    try:
        for index, part in enumerate(parts):
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, NOFOLLOW_DIR, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                if isinstance(exc, FileNotFoundError) and not create:
                    raise
                where = "/".join(parts[:index + 1])
                raise LinkRefused(f"{where} in the server's output root is a symlink or a file, not a folder; the "
                                  f"server never follows links there: remove it or pick another dir") from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def open_file(root: Path, parts: Sequence[str]) -> int:
    """A read descriptor of the regular file ROOT/PARTS, reached without following any link."""
    with open_dir(root, parts[:-1]) as folder:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(f"{'/'.join(parts)} is not a regular file")
    return fd


@dataclass(frozen=True)
class Target:
    """Where a job's world goes: ``folder`` (absolute, inside the root) and the world's name."""

    folder: Path
    name: str
    parts: tuple[str, ...] = ()  # ``folder`` relative to the root, walked without following links

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
        with open_dir(self.path, (STATE_DIR, "tmp"), create=True) as fd:
            os.mkdir(job_id, dir_fd=fd)
        return self.staging_root / job_id

    def clean_staging(self) -> None:
        """Remove what interrupted jobs left (only ever inside ROOT/.serve/tmp, never through a
        link: a symlinked ``.serve`` or ``tmp`` is refused with ``LinkRefused``)."""
        try:
            with open_dir(self.path, (STATE_DIR, "tmp")) as fd:
                for entry in os.listdir(fd):
                    shutil.rmtree(entry, dir_fd=fd, ignore_errors=True) if _is_dir(fd, entry) else \
                        os.unlink(entry, dir_fd=fd)
        except FileNotFoundError:
            pass

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
        target = Target(self.inside(self.path.joinpath(*parts)), name, tuple(parts))
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
        with self.publish_lock, open_dir(self.path, target.parts, create=True) as fd:
            for path in (target.scene, target.glb):
                if _exists(fd, path.name):
                    raise NameTaken(f"{path.relative_to(self.path)} appeared while the job ran; pick another name")
            # GLB first: a scene in the root always has its GLB. Both moves land in the folder's
            # descriptor, so a link swapped in above it cannot redirect them.
            os.replace(glb_tmp, target.glb.name, dst_dir_fd=fd)
            os.rename(scene_tmp, target.scene.name, dst_dir_fd=fd)
            return world_files(fd, target)


def _exists(fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=fd)
        return True
    except FileNotFoundError:
        return False


def _is_dir(fd: int, name: str) -> bool:
    return stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode)


def world_files(fd: int, target: Target) -> list[str]:
    """Every regular file of the world (scene folder and GLB) relative to its folder, sorted; the
    server serves exactly these, so a URL can never name anything else. ``fd``: the folder."""
    files = []
    for folder, _dirs, names, dir_fd in os.fwalk(target.name, dir_fd=fd):  # fwalk never follows links
        for name in names:
            if stat.S_ISREG(os.lstat(name, dir_fd=dir_fd).st_mode):
                files.append(f"{folder}/{name}")
    return sorted(files) + [target.glb.name]


def file_identity(path: Path) -> str:
    """"device:inode:size" of a file: a client on the same machine that finds this identity at the
    server's path has the very file, and copies it instead of downloading it."""
    st = os.stat(path, follow_symlinks=False)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}"
