"""The package layout stays as issue 20 asks: no import cycle, no module over 400 lines, no function
over 60 lines (``scripts/check_layout.py``, run here as a user would run it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_layout.py"


def _load_checker():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_layout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checker_finds_a_cycle_a_long_module_and_a_long_function(tmp_path):
    """On a made-up package: a relative import inside a function closes a cycle; both sizes are caught."""
    package = tmp_path / "worldgen"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")
    (package / "sub" / "b.py").write_text("from worldgen import a\n")
    (package / "long.py").write_text("x = 1\n" * 401)
    body = "".join("        y = 1\n" for _ in range(60))
    (package / "fn.py").write_text(f"class K:\n    def method(self):\n{body}")
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "__init__.py").write_text("from worldgen.a import f\n")
    problems = _load_checker().check(tmp_path)
    assert "import cycle: worldgen.a <-> worldgen.sub.b" in problems
    assert "module over 400 lines: worldgen/long.py (401)" in problems
    assert "function over 60 lines: worldgen/fn.py:2 K.method (61)" in problems
    assert len(problems) == 3  # backends -> worldgen.a is one way only: no cycle


def test_the_repository_has_no_cycle_and_no_oversized_module_or_function():
    done = subprocess.run([sys.executable, str(SCRIPT), str(REPO)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
