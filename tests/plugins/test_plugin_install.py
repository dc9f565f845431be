"""The example third-party package installs with pip and shows up in `worldgen plugins`.

This installs ``worldgen-edges`` into the running test environment (a copy of its folder, so the
build leaves nothing in the source tree); it stays installed, as a user's install would.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN_DEV_PLUGIN = '''
import dataclasses
from worldgen_edges import SPEC as EDGES
SPEC = dataclasses.replace(EDGES, name="warped", geometry="volume")
'''


@pytest.fixture(scope="module")
def installed_edges(tmp_path_factory, edges_source):
    if importlib.util.find_spec("setuptools") is None:
        pytest.fail("setuptools is missing from the test environment; install the test extra: pip install -e '.[test]'")
    source = tmp_path_factory.mktemp("src") / "worldgen-edges"
    shutil.copytree(edges_source, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return source


def run_worldgen(*args, env_extra=None):
    worldgen = Path(sys.executable).with_name("worldgen")
    assert worldgen.exists(), "the worldgen console script is missing; pip install -e . first"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLDGEN_PLUGINS", "WORLDGEN_DEV_PLUGINS")}
    env.update(env_extra or {})
    return subprocess.run([str(worldgen), *args], capture_output=True, text=True, env=env, timeout=120)


def test_pip_installed_package_is_listed_by_worldgen_plugins(installed_edges):
    result = run_worldgen("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(row["group"], row["name"]): row for row in json.loads(result.stdout)}
    edges = rows[("worldgen.modalities", "edges")]
    assert edges["distribution"] == "worldgen-edges" and edges["version"] == "0.1.0"
    assert edges["summary"] == "1 ch, none, estimator"
    assert rows[("worldgen.modalities", "depth")]["summary"] == "1 ch, disparity, estimator"
    text = run_worldgen("plugins").stdout
    assert any(line.split()[:3] == ["worldgen.modalities", "edges", "worldgen-edges"] for line in text.splitlines())


def test_the_allowlist_can_keep_the_installed_package_out(installed_edges):
    result = run_worldgen("plugins", "--json", env_extra={"WORLDGEN_PLUGINS": "someone-else"})
    names = {row["name"] for row in json.loads(result.stdout)}
    assert "edges" not in names and {"depth", "normal"} <= names


def test_a_malformed_plugin_is_a_warning_not_a_failure(installed_edges, tmp_path):
    (tmp_path / "worldgen_warped.py").write_text(BROKEN_DEV_PLUGIN)
    result = run_worldgen("plugins", "--json", env_extra={
        "WORLDGEN_DEV_PLUGINS": "worldgen_warped:SPEC",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    })
    assert result.returncode == 0, result.stderr
    names = {row["name"] for row in json.loads(result.stdout)}
    assert "edges" in names and "warped" not in names
    assert "worldgen_warped:SPEC" in result.stderr and "geometry must be one of" in result.stderr


def test_the_example_packages_own_tests_pass(installed_edges):
    """The tests the plugin guide tells authors to write run green against the installed package."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::UserWarning", "tests"],
        cwd=installed_edges, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
