"""Fixtures for the reliability tests; the helpers live in ``tests/helpers/reliability_support.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reliability_support import procedural_scene


@pytest.fixture(scope="session")
def _scene_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "scene"
    procedural_scene(path)
    return path


@pytest.fixture
def scene(_scene_template, tmp_path) -> Path:
    """A fresh writable copy of a 64x32 procedural scene (version 1) in this test's folder."""
    return Path(shutil.copytree(_scene_template, tmp_path / "scene"))
