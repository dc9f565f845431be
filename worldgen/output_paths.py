"""The one check of every user-given output path, before anything is written to it.

Writes are atomic (a temporary file renamed over the target), which would quietly *replace* whatever
the target is: a device such as /dev/null, a FIFO, a socket. And a path that lands inside a scene
folder (``-o fjord/scene.json``, ``-o fjord/v1/depth.npy``) would destroy the scene it came from. So:

- an existing target must be a regular file (or a link to one): never a device, FIFO, socket or folder;
- the target must not be inside a scene folder (one holding ``scene.json``), unless it is inside
  ``managed`` (a scene's own output area, e.g. a batch job's ``SCENE/exports/``);
- with ``confine_to`` (a recipe's output folder), the path with every symlink resolved must stay
  inside that folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

from .errors import UserInputError
from .validation import printable

MANIFEST_NAME = "scene.json"  # worldgen.scene.manifest.MANIFEST_NAME (not imported: this module stays light)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _scene_containing(resolved: Path) -> Optional[Path]:
    """The nearest folder at or above ``resolved`` that is a scene (holds scene.json), if any."""
    for folder in [resolved, *resolved.parents]:
        try:
            if (folder / MANIFEST_NAME).is_file():
                return folder
        except OSError:
            return None
    return None


def check_output_path(path: str | os.PathLike, *, what: str = "output", folder: bool = False,
                      confine_to: Optional[str | os.PathLike] = None,
                      managed: Optional[str | os.PathLike] = None) -> Path:
    """``path`` if worldgen may write it, else ``UserInputError`` naming the problem and the fix.

    ``folder``: the output is a new folder (a scene), so an existing target must be a folder (or
    absent) and must not be inside another scene. Returns ``path`` unchanged (callers keep the
    user's spelling in their messages)."""
    path = Path(path)
    shown = printable(str(path))
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UserInputError(f"{what} {shown} cannot be resolved ({printable(exc)}); fix or remove the link") from None
    if confine_to is not None:
        root = Path(confine_to).resolve()
        if not resolved.is_relative_to(root) or resolved == root:
            raise UserInputError(f"{what} {shown} resolves to {printable(str(resolved))}, outside the output folder "
                                 f"{printable(str(root))}; give a path inside it (no '..', no links out of it)")
    try:
        info = os.stat(path)  # follows links: what a write would really hit
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UserInputError(f"{what} {shown} cannot be checked ({printable(exc.strerror or exc)}); "
                             f"choose another path") from None
    if info is None and os.path.islink(path):
        raise UserInputError(f"{what} {shown} is a dangling symbolic link; remove it or choose another path")
    if info is not None:
        if folder:
            if not stat.S_ISDIR(info.st_mode):
                raise UserInputError(f"{what} {shown} exists and is {_kind(info.st_mode)}; give a new folder name")
        elif not stat.S_ISREG(info.st_mode):
            raise UserInputError(f"{what} {shown} is {_kind(info.st_mode)}, not a regular file; worldgen never "
                                 f"replaces it: give a file name")
    scene = _scene_containing(resolved if folder else resolved.parent)
    if folder and scene == resolved:
        scene = _scene_containing(resolved.parent)  # an existing scene there is reported by its command
    if scene is not None:
        if managed is not None and resolved.is_relative_to(Path(managed).resolve()):
            return path
        raise UserInputError(f"{what} {shown} is inside the scene folder {printable(str(scene))}; writing there "
                             f"could destroy the scene: give a path outside it (e.g. beside the folder)")
    return path
