"""The recipe tests share the world-building tests' tiny JointNet checkpoints (tests/worldbuilding/conftest.py).

Loaded by path: the suite runs with --import-mode=importlib, where test folders are not packages.
"""

import importlib.util
from pathlib import Path

_SOURCE = Path(__file__).resolve().parents[1] / "worldbuilding" / "conftest.py"
_spec = importlib.util.spec_from_file_location("worldbuilding_fixtures", _SOURCE)
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

tiny_models = _fixtures.tiny_models
_plain_cpu_kernels = _fixtures._plain_cpu_kernels
