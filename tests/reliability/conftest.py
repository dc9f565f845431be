"""Fixtures for the reliability tests; the helpers live in ``reliability_support`` (importable)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_support import procedural_scene  # noqa: E402


@pytest.fixture(scope="session")
def _scene_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "scene"
    procedural_scene(path)
    return path


@pytest.fixture
def scene(_scene_template, tmp_path) -> Path:
    """A fresh writable copy of a 64x32 procedural scene (version 1) in this test's folder."""
    return Path(shutil.copytree(_scene_template, tmp_path / "scene"))
