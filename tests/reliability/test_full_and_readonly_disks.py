"""Full disks and read-only file systems (issue 15): every writing command ends in exit 1 with one
line that names the path and the fix, and the scene it worked on is exactly as it was.

The disks are real: a small tmpfs mounted by the test (full: filled up; read-only: remounted ro),
which needs root. Where mounting is impossible those tests skip with the reason, and the injected
ENOSPC/EROFS tests (always run) cover the same write paths. Backends: procedural, and for the
JointNet tasks a cheap stand-in backend (the subject is the write path, not the model)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from reliability_support import assert_error, invoke, procedural_scene, tree


class StandInBackend:
    """Answers every JointNet task with a changed copy of its input (image + 1/255), instantly."""

    name = "stand-in"
    modality = "depth"

    def settings(self) -> dict:
        return {}

    def _changed(self, snapshot, height=None):
        from worldgen.scene.snapshot import Snapshot
        from worldgen.geometry.projection import CylindricalProjection

        image = np.clip(snapshot.image + 1 / 255, 0, 1).astype(np.float32)
        modalities = dict(snapshot.modalities)
        projection = snapshot.projection
        if height is not None:
            pad = height - image.shape[0]
            image = np.pad(image, ((0, pad), (0, 0), (0, 0)), mode="edge")
            modalities = {k: np.pad(v, ((0, pad), (0, 0), (0, 0)), mode="edge") for k, v in modalities.items()}
            projection = CylindricalProjection(projection.width, height, projection.span_deg)
        return Snapshot(image=image, modalities=modalities, projection=projection,
                        geometry=dict(snapshot.geometry), prompt=snapshot.prompt)

    def refine(self, request, snapshot, progress=None):
        return self._changed(snapshot)

    def edit(self, request, snapshot, progress=None):
        return self._changed(snapshot)

    def paint(self, request, snapshot, progress=None):
        return self._changed(snapshot)

    def outpaint(self, request, snapshot, progress=None):
        return self._changed(snapshot, height=request.height)

    def estimate(self, request, progress=None):
        from worldgen.scene.snapshot import Snapshot
        from worldgen.geometry.projection import CylindricalProjection

        h, w = request.image.shape[:2]
        return Snapshot(image=request.image, modalities={"depth": np.full((h, w, 1), 0.5, np.float32)},
                        projection=CylindricalProjection(w, h, request.span_deg))


@pytest.fixture
def stand_in(monkeypatch):
    from worldgen.world import backends as _taskcli  # the task model loader (was cli/commands/_taskcli)

    monkeypatch.setattr(_taskcli, "load_task_backend", lambda kw, scene=None: StandInBackend())


def _mask(path: Path) -> Path:
    from PIL import Image

    image = Image.new("L", (64, 32), 0)
    image.paste(255, (8, 4, 24, 20))
    image.save(path)
    return path


def writing_commands(scene: Path, inputs: Path, out: Path) -> dict[str, list]:
    """Every command that writes, with arguments that succeed on a healthy disk. ``out``: where new
    outputs go (on the broken disk too, so commands that make new files fail there)."""
    return {
        "place": ["place", scene, "a hut", "--distance", 1, "--azimuth", 180, "--width", 2, "--backend", "procedural"],
        "refine": ["refine", scene, "--scale", 1],
        "edit": ["edit", scene, "--mask", inputs / "mask.png"],
        "outpaint": ["outpaint", scene, "--height", 40],
        "paint": ["paint", scene],
        "pano": ["pano", "hills", "--backend", "procedural", "--size", "64x32", "-o", out / "new.glb"],
        "export": ["export", scene, "-f", "ply", "-o", out / "scene.ply"],
        "depth": ["depth", inputs / "image.png", "-o", out / "estimated"],
        "build": ["build", inputs / "r.toml", "-o", out / "built.glb"],
        "batch": ["batch", inputs / "jobs.txt", "--out", out / "batch", "--size", "64x32", "--backend", "procedural"],
    }


def _inputs(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    _mask(folder / "mask.png")
    Image.new("RGB", (64, 32), (90, 120, 160)).save(folder / "image.png")
    (folder / "r.toml").write_text('prompt = "hills"\nsize = "64x32"\nsteps = 1\n[backend]\nname = "procedural"\n')
    (folder / "jobs.txt").write_text("hills by a lake\n")
    return folder


def _assert_unchanged(scene: Path, before: dict) -> None:
    from worldgen.scene.store import Scene

    after = tree(scene)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    opened = Scene.open(scene)
    for version in range(1, opened.current + 1):
        opened.load(version)


# ---- real disks --------------------------------------------------------------------------------------

def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the injected-ENOSPC/EROFS tests cover these write paths")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the injected tests cover these paths")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    _mount_tmpfs(mount, "1m")
    yield mount
    _umount(mount)


def _fill(disk: Path) -> None:
    """Use up every free byte (tmpfs counts pages: fill in decreasing chunks until nothing fits)."""
    k = 0
    for size in (1 << 16, 1 << 12, 1 << 9, 1):
        while True:
            try:
                with open(disk / f"filler{k}", "wb") as handle:
                    handle.write(b"\0" * size)
                k += 1
            except OSError:
                try:
                    (disk / f"filler{k}").unlink()
                except FileNotFoundError:
                    pass
                break


COMMANDS = list(writing_commands(Path("s"), Path("i"), Path("o")))


@pytest.mark.parametrize("broken", ["full", "read-only"])
@pytest.mark.parametrize("command", COMMANDS)
def test_full_or_read_only_disk_every_writing_command_is_one_line_and_loses_nothing(
        command, broken, small_disk, tmp_path, monkeypatch, stand_in, _scene_template):
    scene = Path(shutil.copytree(_scene_template, small_disk / "scene"))
    inputs = _inputs(tmp_path / "inputs")
    monkeypatch.chdir(small_disk if broken == "full" else tmp_path)
    if broken == "full":
        _fill(small_disk)
    else:
        remount = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only ({remount.stderr.strip()})")
    before = tree(scene)
    message = assert_error(invoke(writing_commands(scene, inputs, small_disk)[command] + ["-q"]), broken)
    assert str(small_disk) in message, message  # names the path
    _assert_unchanged(scene, before)


# ---- injected faults (run everywhere) -------------------------------------------------------------------

@pytest.fixture
def failing_writes(tmp_path, monkeypatch):
    """While ``state["errno"]`` is set, every file write under worldgen raises it, as a full or
    read-only disk would (creating folders, writing files, opening files for writing)."""
    import pathlib

    state = {"errno": None}
    real_open, real_write, real_mkdir = os.open, pathlib.Path.write_bytes, pathlib.Path.mkdir

    def fail(path):
        raise OSError(state["errno"], os.strerror(state["errno"]), str(path))

    def guarded_open(path, flags, *args, **kwargs):
        if state["errno"] and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fail(path)
        return real_open(path, flags, *args, **kwargs)

    def write_bytes(self, data):
        return fail(self) if state["errno"] else real_write(self, data)

    def mkdir(self, *args, **kwargs):
        return fail(self) if state["errno"] else real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", guarded_open)
    yield state
    state["errno"] = None


@pytest.mark.parametrize("code, fragment", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"),
                                            (errno.EACCES, "permission")])
@pytest.mark.parametrize("command", ["place", "refine", "edit", "outpaint", "paint", "export", "pano"])
def test_injected_write_errors_are_one_line_naming_the_path(command, code, fragment, failing_writes, tmp_path,
                                                           monkeypatch, stand_in, _scene_template):
    scene = Path(shutil.copytree(_scene_template, tmp_path / "scene"))
    inputs = _inputs(tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)
    before = tree(scene)
    failing_writes["errno"] = code
    message = assert_error(invoke(writing_commands(scene, inputs, tmp_path / "out")[command] + ["-q"]), fragment)
    assert str(tmp_path) in message, message
    failing_writes["errno"] = None
    _assert_unchanged(scene, before)
