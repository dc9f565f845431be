"""A hypothesis-driven corruption test through the real CLI (issue 15): damage one scene file or
one manifest field at a time, then run the commands that read a scene (history, export, place).
Each either succeeds or ends in exit 1 with ONE line: no traceback, no "internal error".

Files: scene.json and every layer file (image.png, depth.npy, the previews), each truncated,
replaced by junk, emptied, replaced by a folder, a dangling link or a link out of the scene.
Manifest fields: every key of the manifest and of a version record, set to a wrong type, removed,
made huge, nested deeply, NaN/inf, negative, or a path that escapes. Bounded for CI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import error_line, invoke

RUNS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

RECORD_KEYS = ["version", "operation", "created", "parent", "prompt", "negative_prompt", "seed", "backend",
               "modality", "projection", "size", "geometry", "layers", "previews", "params",
               ("backend", "name"), ("backend", "settings"), ("projection", "width"), ("projection", "height"),
               ("projection", "span_deg"), ("projection", "type"), ("layers", "image"), ("layers", "depth"),
               ("previews", "depth"), ("geometry", "near"), ("geometry", "far"), ("geometry", "disparity_scale")]
TOP_KEYS = ["format", "format_version", "created", "versions"]
NESTED: object = {"b": [1]}
for _ in range(300):
    NESTED = [NESTED]
BAD_VALUES = st.sampled_from([
    None, True, -1, -(2**70), 2**70, 10**400 // 10**300, 0, 1.5, "", "x" * 5000, "../../etc/passwd", "/etc/passwd",
    "v1/../../x", "v1/image.png", "v1", ".", [], [1, 2], {}, {"x": 1}, NESTED, "NaN", "Infinity",
    "\x1b[2J\n*v9 forged", float("nan"), float("inf"), float("-inf")])
FILE_DAMAGE = ["truncate", "junk", "empty", "folder", "dangling-link", "link-out", "remove"]


def _commands(scene: Path, out: Path) -> list[list]:
    return [["history", scene], ["export", scene, "-f", "ply", "-o", out / "x.ply", "-q"],
            ["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2, "--backend", "procedural",
             "-q"]]


def _check(result) -> None:
    if result.exit_code != 0:
        error_line(result)  # exit 1, one line, no traceback, not an internal error


@pytest.fixture
def fresh(_scene_template, tmp_path):
    counter = iter(range(10**6))

    def make() -> Path:
        return Path(shutil.copytree(_scene_template, tmp_path / f"scene{next(counter)}"))

    return make


def _set(document: dict, key, value, delete: bool) -> None:
    path = key if isinstance(key, tuple) else (key,)
    parent = document
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            return
    if delete:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


@RUNS
@given(key=st.sampled_from(RECORD_KEYS + [("top", k) for k in TOP_KEYS]), value=BAD_VALUES, delete=st.booleans())
def test_any_damaged_manifest_field_is_one_line(fresh, tmp_path, key, value, delete):
    scene = fresh()
    manifest = json.loads((scene / "scene.json").read_text())
    if isinstance(key, tuple) and key[0] == "top":
        _set(manifest, key[1], value, delete)
    else:
        _set(manifest["versions"][0], key, value, delete)
    (scene / "scene.json").write_text(json.dumps(manifest))  # Python writes NaN/inf: hostile files do too
    for args in _commands(scene, tmp_path):
        _check(invoke(args))


@RUNS
@given(target=st.sampled_from(["scene.json", "v1/image.png", "v1/depth.npy", "v1/depth.png", "v1/depth_preview.png",
                               "v1"]),
       damage=st.sampled_from(FILE_DAMAGE), cut=st.floats(0, 1), junk=st.binary(max_size=64))
def test_any_damaged_scene_file_is_one_line(fresh, tmp_path, target, damage, cut, junk):
    scene = fresh()
    path = scene / target
    if damage == "truncate" and path.is_file():
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
    elif damage == "junk" and path.is_file():
        path.write_bytes(junk + path.read_bytes()[len(junk):])
    elif damage == "empty" and path.is_file():
        path.write_bytes(b"")
    else:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        if damage == "folder":
            path.mkdir()
        elif damage == "dangling-link":
            path.symlink_to(tmp_path / "nowhere")
        elif damage == "link-out":
            outside = tmp_path / "outside.bin"
            outside.write_bytes(junk)
            path.symlink_to(outside)
    for args in _commands(scene, tmp_path):
        _check(invoke(args))
