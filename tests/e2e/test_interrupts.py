"""Interrupted work never loses a scene: Ctrl-C or a kill during `pano`, `refine`, `export` or
`train` leaves the previous version readable and no half-written file under a real name.

Three layers of evidence:
1. real `worldgen` processes (interrupt_driver.py) killed with SIGKILL or SIGINT at seeded random
   moments while they loop over their command: the scene opens and every version loads;
2. in-process, a Ctrl-C (KeyboardInterrupt) injected just before and just after EACH file-system
   step of a command in turn (every mkdir, open, temp file, write, fsync, rename and replace): exit
   code 130 with one line, and the folder is exactly as before, or exactly as a finished command
   leaves it (a Ctrl-C after the final replace); for `pano`: nothing, or a complete scene;
3. the real JointNet refine and a real training run interrupted mid-way; training resumes.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_support import fixture_dir, invoke, procedural_scene, tree, writable_copy

DRIVER = Path(__file__).with_name("interrupt_driver.py")


# ---- what "not lost" means ---------------------------------------------------------------------------

def glb_is_complete(path: Path) -> bool:
    data = path.read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        return False
    version, length = struct.unpack_from("<II", data, 4)
    chunk_length, chunk_type = struct.unpack_from("<II", data, 12)
    if version != 2 or length != len(data) or chunk_type != 0x4E4F534A:
        return False
    json.loads(data[20:20 + chunk_length])
    return True


def assert_scene_intact(folder: Path, at_least: int = 1, allow_temp: bool = True):
    """The scene opens, every version loads, and nothing that is not listed in the manifest looks like
    part of it: extra entries are hidden temporaries (a SIGKILL cannot clean those up) or at most one
    unreferenced next-version folder (written, then killed before the manifest named it; the next write
    replaces it). Returns the scene."""
    from worldgen.scene.store import Scene

    scene = Scene.open(folder)
    assert scene.current >= at_least
    for version in range(1, scene.current + 1):
        scene.load(version)
    listed = {"scene.json"} | {record["layers"]["image"].split("/")[0] for record in scene.versions}
    extra = sorted(p.name for p in folder.iterdir() if p.name not in listed)
    hidden = [name for name in extra if name.startswith(".") and name.endswith(".tmp")]
    assert set(extra) - set(hidden) <= {f"v{scene.current + 1}"}, f"stray entries in {folder}: {extra}"
    if not allow_temp:
        assert hidden == [], f"temporary files left after a handled interrupt: {hidden}"
    return scene


def _run_driver(mode: str, root: Path, sig: int, delay: float) -> tuple[int, list[str]]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(DRIVER), mode, str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline().strip()
        assert first == "ready", f"driver did not start: {first!r} {proc.stderr.read()}"
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [line for line in out.splitlines() if line.startswith("failed")], f"a command failed: {out} {err}"
    return proc.returncode, [line for line in out.splitlines() if line.startswith("done")]


# Seeded: the same moments every run. Several per signal, so kills land in different phases.
KILLS = [(mode, sig, delay) for mode in ("pano", "export", "refine")
         for sig, delays in ((signal.SIGKILL, random.Random(f"{mode}-kill").sample(range(5, 90), 3)),
                             (signal.SIGINT, random.Random(f"{mode}-int").sample(range(5, 90), 1)))
         for delay in [d / 100 for d in delays]]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("interrupt-template") / "scene"
    procedural_scene(path, 128, 64)
    return path


@pytest.mark.parametrize("mode, sig, delay", KILLS,
                         ids=[f"{m}-{signal.Signals(s).name}-{d:.2f}s" for m, s, d in KILLS])
def test_a_killed_process_never_leaves_a_scene_unreadable(mode, sig, delay, template, tmp_path, monkeypatch):
    import shutil

    root = tmp_path
    if mode != "pano":
        shutil.copytree(template, root / "scene")
    scene_before = tree(root / "scene") if mode == "export" else None
    if mode == "export":  # the two files the loop alternates between, made once in-process
        expected = {}
        for step in (1, 2):
            target = root / f"expect{step}.glb"
            assert invoke(["export", root / "scene", "-o", target, "-O", f"step={step}", "-q"]).exit_code == 0
            expected[step] = target.read_bytes()

    code, done = _run_driver(mode, root, sig, delay)

    if sig == signal.SIGINT:
        assert code == 130, f"a Ctrl-C must end the command with code 130, got {code}"
    else:
        assert code == -signal.SIGKILL
    # Hidden temporaries are tolerated here even after a SIGINT: a signal that arrives inside a slow
    # syscall that creates one can leak it (the in-process injection tests below pin that down).
    if mode == "pano":
        for index in range(len(done) + 1):
            folder, glb = root / f"w{index}", root / f"w{index}.glb"
            if (folder / "scene.json").exists():
                assert_scene_intact(folder)
            elif folder.exists():  # killed before the manifest: nothing that looks like a scene
                assert all(p.name.startswith(".") or p.name == "v1" for p in folder.iterdir())
            if glb.exists():
                assert glb_is_complete(glb)
            if index < len(done):
                assert (folder / "scene.json").exists() and glb.exists()
        # Whatever the kill left, running the same command again works (or, if the killed run had
        # finished its scene, says so).
        folder = root / f"w{len(done)}"
        had_scene = (folder / "scene.json").exists()
        again = invoke(["pano", "hills by a lake", "-o", root / f"w{len(done)}.glb", "--size", "128x64", "-q"])
        if had_scene:
            assert again.exit_code == 1 and "already holds a scene" in again.output, again.output
        else:
            assert again.exit_code == 0, again.output
            assert_scene_intact(folder)
    elif mode == "export":
        assert tree(root / "scene") == scene_before, "export changed the scene"
        out = root / "out.glb"
        assert not out.exists() or out.read_bytes() in expected.values(), "out.glb is neither old nor new"
    else:
        scene = assert_scene_intact(root / "scene", at_least=1 + len(done))
        first = np.round(scene.load(1).image * 255)
        for version in range(2, scene.current + 1):  # no torn version: each is exactly one step on
            assert np.array_equal(np.round(scene.load(version).image * 255), np.minimum(first + version - 1, 255))
        # The next refine after the kill works and lands right after the last complete version.
        sys.path.insert(0, str(DRIVER.parent))
        from interrupt_driver import StepRefiner

        from worldgen.world import backends as _taskcli  # the task model loader (was cli/commands/_taskcli)

        monkeypatch.setattr(_taskcli, "load_task_backend", lambda kw, scene=None: StepRefiner())
        assert invoke(["refine", root / "scene", "--scale", "1", "-q"]).exit_code == 0
        assert assert_scene_intact(root / "scene").current == scene.current + 1


# ---- Ctrl-C at every file-system step ---------------------------------------------------------------

WRITE_STEPS = [(os, "open"), (os, "replace"), (os, "fsync"), (tempfile, "mkstemp"), (tempfile, "mkdtemp"),
               (pathlib.Path, "write_bytes"), (pathlib.Path, "rename"), (pathlib.Path, "mkdir")]


class CtrlCAt:
    """Raise KeyboardInterrupt at the k-th file-system step (k from 1), either just before it runs or
    just after it has run (a Ctrl-C that arrives during a slow syscall is raised when it returns)."""

    def __init__(self, monkeypatch, k: int, when: str) -> None:
        self.k, self.when, self.seen, self.steps = k, when, 0, []
        for owner, name in WRITE_STEPS:
            real = getattr(owner, name)
            monkeypatch.setattr(owner, name, self._wrap(real, name))

    def _wrap(self, real, name):
        def step(*args, **kwargs):
            self.seen += 1
            self.steps.append(name)
            hit = self.seen == self.k
            if hit and self.when == "before":
                raise KeyboardInterrupt
            value = real(*args, **kwargs)
            if hit:
                raise KeyboardInterrupt
            return value

        return step


def _interrupt_everywhere(monkeypatch, run, check, limit: int = 60) -> int:
    """Run ``run()`` with a Ctrl-C before, then after, step 1, 2, ... until it completes. After each
    interrupted run ``check(where)`` returns what is wrong with the files (and puts them back as they
    were, so the next run starts clean). All problems are reported together at the end.
    Returns the number of file-system steps of an uninterrupted run."""
    problems = []
    for k in range(1, limit):
        for when in ("before", "after"):
            with monkeypatch.context() as patch:
                injector = CtrlCAt(patch, k, when)
                result = run()
            if injector.seen < k:  # finished before step k: every step has been interrupted
                assert result.exit_code == 0, result.output
                assert not problems, "\n".join(problems)
                return k - 1
            where = f"Ctrl-C {when} step {k} ({injector.steps[k - 1]})"
            assert result.exit_code == 130, f"{where}: {result.output}"
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert lines == ["worldgen: interrupted; nothing was written past the last complete version"], lines
            problems += [f"{where}: {problem}" for problem in check(where)]
    pytest.fail(f"the command did not finish within {limit} steps")


def _reset(root: Path, before: dict, originals: dict[str, bytes]) -> list[str]:
    """What differs from ``before`` under ``root``; then remove what is new and restore ``originals``."""
    import shutil

    after = tree(root)
    changed = _diff(before, after)
    for rel in sorted(changed, key=len, reverse=True):
        path = root / rel
        if rel not in before:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for rel, data in originals.items():
        (root / rel).write_bytes(data)
    assert tree(root) == before
    new = {rel for rel in changed if rel not in before}
    shown = [rel for rel in sorted(changed) if str(Path(rel).parent) not in new]  # a new folder, not its files
    return [f"{rel}{'/' if after.get(rel) == 'dir' else ''} {'left behind' if rel in new else 'changed'}"
            for rel in shown]


def test_ctrl_c_at_every_step_of_refine_leaves_the_scene_as_it_was(template, tmp_path, monkeypatch):
    import shutil

    sys.path.insert(0, str(DRIVER.parent))
    from interrupt_driver import StepRefiner

    from worldgen.world import backends as _taskcli  # the task model loader (was cli/commands/_taskcli)
    from worldgen.scene.store import Scene

    scene = Path(shutil.copytree(template, tmp_path / "scene"))
    monkeypatch.setattr(_taskcli, "load_task_backend", lambda kw, scene=None: StepRefiner())
    before, manifest = tree(scene), (scene / "scene.json").read_bytes()

    def check(where):
        # Either nothing happened, or (a Ctrl-C after the manifest's final replace) version 2 is complete.
        if Scene.open(scene).current == 2:
            assert_scene_intact(scene)
            extra = sorted(p.name for p in scene.iterdir() if p.name not in ("scene.json", "v1", "v2"))
            (scene / "scene.json").write_bytes(manifest)
            shutil.rmtree(scene / "v2")
            return [f"{name} left behind" for name in extra] + _reset(scene, before, {})
        return _reset(scene, before, {"scene.json": manifest})

    steps = _interrupt_everywhere(monkeypatch, lambda: invoke(["refine", scene, "--scale", "1", "-q"]), check)
    assert steps >= 6  # temp folder, four layer files, rename, manifest temp/fsync/replace
    assert assert_scene_intact(scene, allow_temp=False).current == 2


def test_ctrl_c_at_every_step_of_pano_leaves_nothing_or_a_complete_scene(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = iter(range(1000))

    def run():
        return invoke(["pano", "hills by a lake", "-o", tmp_path / f"w{next(runs)}.glb", "--size", "64x32", "-q"])

    count = iter(range(1000))

    def check(where):
        name = f"w{next(count)}"
        folder, glb = tmp_path / name, tmp_path / f"{name}.glb"
        problems = []
        if (folder / "scene.json").exists():
            assert_scene_intact(folder)
            extra = sorted(p.name for p in folder.iterdir() if p.name not in ("scene.json", "v1"))
            problems += [f"{name}/{entry} left behind" for entry in extra]
            if glb.exists() and not glb_is_complete(glb):
                problems.append(f"{glb.name} is incomplete")
        elif folder.exists():
            problems.append(f"partial scene folder {name}/ left behind: {sorted(p.name for p in folder.iterdir())}")
        elif glb.exists():
            problems.append(f"{glb.name} written without a scene")
        for leftover in [p for p in tmp_path.iterdir() if p.name.startswith(".")]:
            problems.append(f"{leftover.name} left behind")
            leftover.unlink()
        return problems

    assert _interrupt_everywhere(monkeypatch, run, check) >= 9


def test_ctrl_c_at_every_step_of_export_keeps_the_old_file(template, tmp_path, monkeypatch):
    import shutil

    scene = Path(shutil.copytree(template, tmp_path / "scene"))
    out = tmp_path / "world.glb"
    out.write_bytes(b"the previous export")
    before = tree(tmp_path)

    def check(where):
        problems = []
        if out.read_bytes() != b"the previous export":  # a Ctrl-C after the final replace: the new file
            if not glb_is_complete(out):
                problems.append(f"{out.name} is neither the old file nor a complete new one")
            out.write_bytes(b"the previous export")
        return problems + _reset(tmp_path, before, {})

    steps = _interrupt_everywhere(monkeypatch, lambda: invoke(["export", scene, "-o", out, "-O", "step=2", "-q"]),
                                  check)
    assert steps >= 3 and glb_is_complete(out)


def _diff(before: dict, after: dict) -> dict:
    return {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}


# ---- the real model and real training --------------------------------------------------------------------

class _CtrlCOnEvent:
    """A progress callback that presses Ctrl-C at the n-th event of a stage."""

    def __init__(self, stage: str, at: int) -> None:
        self.stage, self.at, self.count = stage, at, 0

    def __call__(self, event) -> None:
        if event.stage == self.stage:
            self.count += 1
            if self.count == self.at:
                raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_ctrl_c_during_a_real_jointnet_refine_keeps_the_previous_version(tmp_path, monkeypatch):
    from worldgen.cli import progress as cli_progress

    monkeypatch.chdir(tmp_path)
    model = ["--model", fixture_dir() / "model", "--base", fixture_dir() / "base"]
    made = invoke(["pano", "hills", *model, "--size", "64x32", "--steps", "1", "-o", tmp_path / "j.glb", "-q"])
    assert made.exit_code == 0, made.output
    scene = tmp_path / "j"
    before = tree(scene)

    monkeypatch.setattr(cli_progress, "progress_for", lambda quiet: _CtrlCOnEvent("denoise", 2))
    result = invoke(["refine", scene, *model, "--scale", "1", "--strength", "1.0", "--steps", "3"])
    assert result.exit_code == 130 and "interrupted" in result.stderr, result.output
    assert tree(scene) == before
    monkeypatch.undo()

    done = invoke(["refine", scene, *model, "--scale", "1", "--strength", "1.0", "--steps", "3", "-q"])
    assert done.exit_code == 0, done.output
    assert assert_scene_intact(scene, allow_temp=False).current == 2


def _training_images(folder: Path, count: int = 2) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = np.kron(rng.random((4, 4, 3)), np.ones((8, 8, 1)))
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"img{i}.png")
        np.save(folder / f"img{i}.depth.npy", rng.random((32, 32)).astype(np.float32))
        (folder / f"img{i}.txt").write_text(f"picture {i}\n")
    return folder


def test_train_interrupted_then_resumed_continues_from_the_last_checkpoint(tmp_path, monkeypatch):
    from worldgen.cli import progress as cli_progress
    from worldgen.training import checkpoints

    base = writable_copy(fixture_dir() / "base", tmp_path / "base")
    data = _training_images(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", "--modality", "depth", "--base", base, "--data", data, "--out", out, "--resolution", "32",
            "--batch-size", "1", "--num-workers", "0", "--warmup-steps", "0", "--checkpoint-every", "1",
            "--validation-every", "0", "--validation-steps", "1", "--report-to", "none", "--log-every", "1"]

    # 1. Ctrl-C in step 3 (after the checkpoints of steps 1 and 2).
    monkeypatch.setattr(cli_progress, "progress_for", lambda quiet: _CtrlCOnEvent("train", 4))
    first = invoke(args + ["--steps", "4"])
    assert first.exit_code == 130, first.output
    assert [step for step, _ in checkpoints.list_checkpoints(out)] == [1, 2]
    assert not (out / "model").exists()

    # 2. Ctrl-C while the step-3 checkpoint is being moved into place: it must not count.
    real_replace = os.replace

    def interrupted_replace(src, dst):
        if Path(dst).name == "step-00000003":
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(cli_progress, "progress_for", lambda quiet: None)
    monkeypatch.setattr(checkpoints.os, "replace", interrupted_replace)
    second = invoke(args + ["--steps", "4", "--resume"])
    assert second.exit_code == 130, second.output
    assert [step for step, _ in checkpoints.list_checkpoints(out)] == [1, 2]
    monkeypatch.setattr(checkpoints.os, "replace", real_replace)

    # 3. Resume: from step 2, to the end, with a usable model and no temporary checkpoint left.
    third = invoke(args + ["--steps", "4", "--resume", "-q"])
    assert third.exit_code == 0, third.output
    assert [step for step, _ in checkpoints.list_checkpoints(out)][-1] == 4
    assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert (out / "model" / "unet" / "config.json").is_file()
    from worldgen.backends.jointnet.loading import load_pair

    load_pair(out / "model")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-2:] == [3, 4]  # the resumed run logged steps 3 and 4 ...
    assert all(np.isfinite(r["loss"]) for r in log)
