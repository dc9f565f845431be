"""A recipe's [[export]] paths are all checked before anything is built or written (issue 26, case 3).
Before, each path was checked as its export ran: `path = "victim.txt"` replaced the user's file, and
only then was a later path refused. Now a recipe-named path that exists is refused unless --force,
and any refusal comes before a scene or a file appears."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import assert_error, invoke, tree

PREVIEW = ["--backend", "procedural", "--size", "64x32", "-q"]
USER_TEXT = "my notes, not a world\n"


def _recipe(folder: Path, *paths: str) -> Path:
    exports = "".join(f'\n[[export]]\nformat = "ply"\npath = "{p}"\n' for p in paths)
    recipe = folder / "r.toml"
    recipe.write_text(f'name = "r"\nprompt = "hills by a lake"\n\n[[export]]\nformat = "glb"\n{exports}')
    return recipe


@pytest.fixture
def folder(tmp_path) -> Path:
    """The recipe's folder, holding a user's file and a link out of it (a path through the link resolves
    outside the output folder, which only a check of the resolved path catches)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "victim.txt").write_text(USER_TEXT)
    (tmp_path / "elsewhere").mkdir()
    (work / "out").symlink_to(tmp_path / "elsewhere")
    return work


@pytest.mark.parametrize("paths", [("victim.txt",), ("fresh.ply", "victim.txt"), ("victim.txt", "out/escape.ply"),
                                   ("fresh.ply", "out/escape.ply")])
def test_a_refused_export_path_leaves_every_file_as_it_was(folder, paths):
    recipe = _recipe(folder, *paths)
    before = tree(folder.parent)
    result = invoke(["build", recipe, "-o", folder / "w.glb", *PREVIEW])
    message = assert_error(result, "export path")
    assert ("--force" in message) == ("victim.txt" in paths)
    assert tree(folder.parent) == before, "a file was written or replaced before the refusal"
    assert (folder / "victim.txt").read_text() == USER_TEXT


def test_force_lets_an_export_replace_an_existing_file(folder):
    result = invoke(["build", _recipe(folder, "victim.txt", "fresh.ply"), "-o", folder / "w.glb", *PREVIEW, "--force"])
    assert result.exit_code == 0, result.output
    assert (folder / "victim.txt").read_bytes().startswith(b"ply")
    assert (folder / "fresh.ply").read_bytes().startswith(b"ply")


def test_the_builds_own_output_may_be_replaced(folder):
    (folder / "w.glb").write_bytes(b"an old export")
    result = invoke(["build", _recipe(folder, "w.glb"), "-o", folder / "w.glb", *PREVIEW])
    assert_error(result, "both write")  # the ply export names the GLB itself: two exports, one file

    recipe = folder / "r.toml"
    recipe.write_text('name = "r"\nprompt = "hills"\n\n[[export]]\nformat = "glb"\npath = "w.glb"\n')
    result = invoke(["build", recipe, "-o", folder / "w.glb", *PREVIEW])
    assert result.exit_code == 0, result.output
    assert (folder / "w.glb").read_bytes()[:4] == b"glTF"
