"""The built wheel installs into a fresh venv offline and works (issue 25).

Offline and fast: the wheel is built without build isolation into a local wheel cache, and pip
installs `worldgen` from that cache only (--no-index --find-links). Its dependencies are the ones
already installed in this test's environment, offered to the fresh venv through a .pth file that
points at a folder of links to them (worldgen's own editable install left out), so the import of
worldgen in the fresh venv can only come from the wheel."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(*args, cwd=None, env=None, timeout=600):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def dependency_links(target: Path) -> Path:
    """A folder of links to everything installed here except worldgen itself."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("worldgen", "__editable__")) or name.endswith(".pth"):
            continue
        (target / entry.name).symlink_to(entry)
    return target


def test_wheel_installs_offline_into_a_fresh_venv_and_makes_a_world(tmp_path):
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", wheels, ROOT)
    (wheel,) = wheels.glob("worldgen-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
        assert "License-Expression: Apache-2.0" in text and "Project-URL:" in text and "Classifier:" in text
        assert any(n.endswith("licenses/LICENSE") for n in archive.namelist())
        assert "Requires-Dist: open3d" in text and "extra == \"view\"" in text  # the viewer is an extra
    venv = tmp_path / "fresh"
    run(sys.executable, "-m", "venv", venv)
    # the venv's bundled setuptools is older than torch asks for; the linked one (from here) serves
    run(venv / "bin/python", "-m", "pip", "uninstall", "-q", "-y", "setuptools")
    fresh_site = Path(run(venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                      .stdout.strip())
    (fresh_site / "installed-deps.pth").write_text(str(dependency_links(tmp_path / "deps")) + "\n")
    env = dict(os.environ, PIP_NO_INDEX="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, "worldgen", env=env)
    where = run(venv / "bin/python", "-c", "import worldgen; print(worldgen.__file__)", cwd=tmp_path, env=env)
    assert where.stdout.strip().startswith(str(fresh_site)), where.stdout  # the wheel, not the checkout
    assert "Usage: worldgen" in run(venv / "bin/worldgen", "--help", cwd=tmp_path, env=env).stdout
    run(venv / "bin/worldgen", "pano", "a quiet lake", "--backend", "procedural", "--size", "128x32", "-o", "w.glb",
        "-q", cwd=tmp_path, env=env)
    assert (tmp_path / "w.glb").stat().st_size > 0 and (tmp_path / "w" / "scene.json").is_file()
