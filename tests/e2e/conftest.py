"""End-to-end tests: real `worldgen` processes, signals and concurrent writers. All marked ``slow``
(``pytest -m "not slow"`` leaves them out for a quick loop)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)
