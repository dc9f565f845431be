"""Real `worldgen` processes write one scene at once (issue 15): every version a process reports is
in the manifest, distinct from the others, loadable, and records the version it started from;
nothing that was there before is lost.

One process per writing command (`place` on the procedural painter; `refine`, `edit`, `outpaint`
and `paint` on a tiny random JointNet checkpoint, `worldgen models tiny`) starts at the same moment
from version 1, so four model-loading writers and a quick one race for the scene lock while they
compute in parallel; the lock serialises only the short commit of each version. Four `place`
writers at once from an earlier version cover same-command contention below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from processes import run_together
from reliability_support import procedural_scene

from worldgen.scene.store import Scene

REPORTED = re.compile(r"version (\d+)\b")


def assert_every_reported_version_present(scene_dir: Path, results, before: int, started_from: int) -> None:
    failures = [err for code, err in results if code != 0]
    assert not failures, f"{len(failures)} of {len(results)} writers failed; first:\n{failures[0]}"
    reported = []
    for _, err in results:
        found = REPORTED.findall(err)
        assert found, f"no version reported:\n{err}"
        reported.append(int(found[-1]))
    assert len(set(reported)) == len(reported), f"two writers reported the same version: {sorted(reported)}"
    scene = Scene.open(scene_dir)
    assert scene.current == before + len(results)
    assert sorted(reported) == list(range(before + 1, before + len(results) + 1))
    for version in range(1, scene.current + 1):
        scene.load(version)  # every layer of every version is there and readable
    for version in reported:
        assert scene.record(version)["parent"] == started_from, scene.record(version)
    folders = [record["layers"]["image"].split("/")[0] for record in scene.versions]
    assert len(set(folders)) == len(folders), folders


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from worldgen.backends.jointnet.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("concurrent") / "tiny", seed=0, sample_size=8)


def _mask(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    image = Image.new("L", (width, height), 0)
    image.paste(255, (8, 4, 24, 20))
    image.save(path)
    return path


def _commands(scene: Path, model: Path, work: Path) -> list[list]:
    """One writer per command, each told to start from version 1 (so a quick writer that commits
    before a slow one has loaded its model does not change where the slow one starts)."""
    jointnet = ["--version", 1, "--model", model, "--steps", "1"]
    mask = _mask(work / "mask.png", 64, 32)
    return [["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2, "--backend", "procedural",
             "--version", 1, "--seed", 0],
            ["refine", scene, "--scale", 1, "--strength", 0.5, "--seed", 1, *jointnet],
            ["edit", scene, "--mask", mask, "--seed", 2, *jointnet],
            ["outpaint", scene, "--height", 40, "--seed", 3, *jointnet],
            ["paint", scene, "--prompt", "hills in season", "--seed", 4, *jointnet]]


def test_a_writer_of_every_kind_at_once_all_keep_their_version(tiny_model, tmp_path):
    scene = procedural_scene(tmp_path / "scene").path
    results = run_together(_commands(scene, tiny_model, tmp_path), cwd=tmp_path)
    assert_every_reported_version_present(scene, results, before=1, started_from=1)
    operations = {Scene.open(scene).record(v)["operation"] for v in range(2, 7)}
    assert len(operations) == 5, operations  # five different commands each committed their version


def test_writers_from_an_earlier_version_record_it_and_skip_a_folder_the_manifest_does_not_list(tmp_path):
    """A user's own `v3/` (not in the manifest) is never deleted: new versions skip past it."""
    scene = procedural_scene(tmp_path / "scene").path
    assert run_together([["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2,
                          "--backend", "procedural"]], cwd=tmp_path)[0][0] == 0
    keep = scene / "v3"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    (scene / "v4").symlink_to(tmp_path / "nowhere")  # a dangling link where the next folder would go
    argv = [["place", scene, f"a hut {k}", "--distance", 1, "--azimuth", 180, "--width", 2, "--backend",
             "procedural", "--version", 1, "--seed", k] for k in range(4)]
    results = run_together(argv, cwd=tmp_path)
    assert_every_reported_version_present(scene, results, before=2, started_from=1)
    assert (keep / "notes.txt").read_text() == "mine"
    assert (scene / "v4").is_symlink()
    folders = {record["layers"]["image"].split("/")[0] for record in Scene.open(scene).versions}
    assert not folders & {"v3", "v4"}


def test_only_provably_abandoned_leftovers_are_swept(tmp_path):
    """What a SIGKILLed writer left (its staging folder, or a vN/ renamed but never listed, both marked
    with its host and pid) is removed by the next commit once that pid is gone; a live process's
    staging folder, another host's, and an unmarked vN/ stay."""
    from worldgen.scene.lock import staging_name

    scene = procedural_scene(tmp_path / "scene")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    mine = staging_name("aaaaaaaaaaaa")
    dead_name = mine.replace(f".{os.getpid()}.", f".{dead_pid}.")
    other_host = mine.replace(".stage.", ".stage.otherhost.", 1).replace(f".{os.getpid()}.", f".{dead_pid}.")
    live_name = mine.replace(f".{os.getpid()}.", f".{os.getppid()}.")
    for name in (dead_name, live_name):
        (scene.path / name).mkdir()
    (scene.path / "v2").mkdir()
    (scene.path / "v2" / dead_name).write_bytes(b"")  # renamed into place, then killed before the manifest
    (scene.path / "v3").mkdir()
    (scene.path / "v3" / "mine.txt").write_text("user data")
    snapshot = scene.load()
    version = Scene.open(scene.path).add_version(snapshot, operation="test")
    assert version == 2
    assert not (scene.path / dead_name).exists()
    assert (scene.path / live_name).is_dir()
    assert (scene.path / "v3" / "mine.txt").read_text() == "user data"
    record = Scene.open(scene.path).record(2)
    assert record["layers"]["image"] == "v2/image.png" and not (scene.path / "v2" / dead_name).exists()
    assert other_host != dead_name
