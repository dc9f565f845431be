"""Unpacking a checkpoint archive safely: every member is checked before any is written (no name
escaping the target, no links or devices, no duplicates, no file/folder clash, a size cap against
zip bombs), and finding the checkpoint folder inside what was unpacked or registered.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional

from worldgen.errors import ModelError

from .loading import is_checkpoint_dir

MAX_UNPACKED_BYTES = 64 << 30  # far above any JointNet checkpoint; stops zip bombs
COPY_CHUNK = 1 << 20


def _member_path(info: zipfile.ZipInfo) -> Optional[PurePosixPath]:
    """The relative path a member may take, or None for a directory entry; refuses anything unsafe."""
    name = info.filename
    if "\\" in name or "\x00" in name:
        raise ModelError(f"zip member {name!r} has an unsafe name; the archive is not a plain checkpoint")
    # Unix type bits live in the high half of external_attr; 0 (no type, e.g. Windows zips) is a file.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise ModelError(f"zip member {name!r} is a symbolic link; refusing the archive")
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ModelError(f"zip member {name!r} is not a regular file; refusing the archive")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or any(part == ".." for part in path.parts):
        raise ModelError(f"zip member {name!r} would land outside the target folder; refusing the archive")
    if info.is_dir() or not path.parts:
        return None
    return path


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into the existing empty folder ``target``, checking every member first."""
    target = Path(target).resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            plan = [(info, _member_path(info)) for info in infos]
            if sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
                raise ModelError(f"{archive} unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; refusing it")
            _check_layout([rel for _, rel in plan if rel is not None], archive)
            for info, rel in plan:
                if rel is None:
                    continue
                dest = (target / Path(*rel.parts)).resolve()
                if dest != target and target not in dest.parents:
                    raise ModelError(f"zip member {info.filename!r} would land outside the target; refusing the archive")
                dest.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                # Streamed copy with our own byte count: the declared size in the header is not trusted.
                with zf.open(info) as src, open(dest, "xb") as out:
                    while chunk := src.read(COPY_CHUNK):
                        written += len(chunk)
                        if written > info.file_size:
                            raise ModelError(f"zip member {info.filename!r} is larger than it declares; refusing the archive")
                        out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ModelError(f"{archive} is damaged ({exc}); re-download it") from None
    except (NotImplementedError, RuntimeError) as exc:  # unsupported compression, encrypted members
        raise ModelError(f"{archive} cannot be unpacked here ({exc}); re-pack it as a plain zip") from None
    except OSError as exc:  # a file where a folder should be, a full disk, ...
        raise ModelError(f"cannot unpack {archive} ({exc.strerror or exc}); check the archive and free disk space") from None


def _check_layout(files: list[PurePosixPath], archive: Path) -> None:
    """Each file once, and no path that is both a file and a folder."""
    seen: set[PurePosixPath] = set()
    for rel in files:
        if rel in seen:
            raise ModelError(f"{archive} holds {rel} twice; refusing the archive")
        seen.add(rel)
    folders = {parent for rel in files for parent in rel.parents}
    clash = seen & folders
    if clash:
        raise ModelError(f"{archive} has {sorted(clash)[0]} as both a file and a folder; refusing the archive")


def find_checkpoint(folder: Path, max_depth: int = 2) -> Optional[Path]:
    """The folder holding unet/ and jointnet/ at or below ``folder`` (zips often add a top folder)."""
    folder = Path(folder)
    if is_checkpoint_dir(folder):
        return folder
    if max_depth == 0:
        return None
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        found = find_checkpoint(child, max_depth - 1)
        if found is not None:
            return found
    return None


# ---- the store -----------------------------------------------------------------------------------
