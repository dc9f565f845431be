"""Where results go, checked before any work: a bad output path should cost nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..errors import UserInputError


def slug(prompt: str, limit: int = 6) -> str:
    """A file name from a prompt's first ``limit`` words, at most 60 characters ("world" when it has
    none): `pano`'s default name, batch jobs' and the server's default names."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())[:limit]
    return "-".join(words)[:60].strip("-") or "world"


def new_world_paths(output: Optional[Path], prompt: str) -> tuple[Path, Path]:
    """(GLB, scene folder) of a new world: ``output`` (default: a name from the prompt) and the folder
    named after it, which must not already hold a scene."""
    from ..output_paths import check_output_path
    from ..scene.manifest import MANIFEST_NAME

    output = Path(output) if output is not None else Path(slug(prompt) + ".glb")
    if output.suffix.lower() != ".glb":
        raise UserInputError(f"{output} must end in .glb; the scene folder is named after it")
    scene_dir = output.with_suffix("")
    if (scene_dir / MANIFEST_NAME).exists():
        raise UserInputError(f"{scene_dir} already holds a scene; pick another -o name, or refine it with "
                             f"`worldgen refine {scene_dir}`")
    check_output_path(output, what="-o")
    check_output_path(scene_dir, what="scene folder", folder=True)
    return output, scene_dir


def output_folder(out: Path, what: str = "--out") -> Path:
    """A folder that many worlds go into (`worldgen batch -o`): checked like every output path."""
    from ..output_paths import check_output_path

    return check_output_path(Path(out), what=what, folder=True)


def new_scene_path(output: Optional[Path]) -> Path:
    """The folder for a new scene made from outside files (it must not hold a scene already)."""
    from ..output_paths import check_output_path
    from ..scene.manifest import MANIFEST_NAME

    if output is None:
        raise UserInputError("outside files make a new scene: pass -o NEW_SCENE_FOLDER")
    output = Path(output)
    if (output / MANIFEST_NAME).exists():
        raise UserInputError(f"{output} already holds a scene; pick another -o folder, or pass the scene itself")
    return check_output_path(output, what="-o", folder=True)


def glb_target(scene_path: Path, glb: Optional[Path]) -> Optional[Path]:
    """Where a task's result is exported: the ``glb`` path, else the NAME.glb that `worldgen pano`
    wrote beside the scene folder NAME/ (kept in step with the latest version), else nowhere."""
    if glb is not None:
        from ..output_paths import check_output_path

        return check_output_path(Path(glb), what="--glb")
    scene_path = Path(scene_path)
    sibling = scene_path.with_name(scene_path.name + ".glb")
    return sibling if sibling.is_file() else None
