"""Helpers the reliability tests import: CLI invocation, error-shape checks, file-tree snapshots,
and small scenes/checkpoints to break (always copies: the shared fixture is read-only).

A plain module (not conftest) so test files can import it; conftest puts this folder on sys.path."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
# The repo and shared/ sit side by side (/work/main and /work/shared; CI clones the same way).
FIXTURE = REPO.parent / "shared" / "fixtures" / "official-tiny"


# ---- the CLI ----------------------------------------------------------------------------------------

def invoke(args, **kwargs):
    """Run the real `worldgen` group in-process (exceptions are caught and inspected, not raised)."""
    from click.testing import CliRunner

    from worldgen.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def error_line(result) -> str:
    """Assert ``result`` is a clean user-facing failure and return its one error line.

    Clean: exit code 1 through SystemExit (not an escaped exception, which CliRunner also reports
    as code 1), no traceback, exactly one ``Error:`` line, and nothing else on stderr except
    ``worldgen:`` notes. That the message names the fix is checked by the callers' fragments."""
    assert not (result.exception is not None and not isinstance(result.exception, SystemExit)), (
        f"escaped exception {type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert result.exit_code == 1, f"exit code {result.exit_code}, expected 1:\n{result.output}"
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, f"expected one 'Error:' line, got:\n{result.stderr}"
    others = [line for line in lines if line not in errors and not line.startswith("worldgen: ")]
    assert not others, f"stray stderr lines besides the error: {others}"
    message = errors[0][len("Error: "):]
    # The CLI turns even a crash into one line; a user-facing failure must not be one of those.
    assert not message.startswith("internal error"), f"a crash, reported as one line: {message}"
    return message


def assert_error(result, *fragments: str) -> str:
    message = error_line(result)
    lowered = message.lower()
    for fragment in fragments:
        assert fragment.lower() in lowered, f"{fragment!r} not in error: {message}"
    return message


# ---- files ------------------------------------------------------------------------------------------

def tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones too) -> content hash / 'dir' / 'link'."""
    root = Path(root)
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def writable_copy(src: Path, dst: Path) -> Path:
    """Copy a (possibly read-only) tree and make the copy writable, so tests can break it."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for path in [dst, *dst.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR | stat.S_IRUSR | (stat.S_IXUSR if path.is_dir() else 0))
    return dst


def fixture_dir() -> Path:
    if not (FIXTURE / "model" / "unet" / "config.json").is_file():
        pytest.fail(f"the official-tiny fixture is missing at {FIXTURE}; clone shared/ beside the repo")
    return FIXTURE


# ---- scenes -----------------------------------------------------------------------------------------

def procedural_scene(path: Path, width: int = 64, height: int = 32, prompt: str = "hills by a lake"):
    """A small real scene (procedural backend, depth + previews) written through the library."""
    from worldgen.backend import GenerateRequest
    from worldgen.registry import get_registry
    from worldgen.scene.store import Scene

    backend = get_registry().backend("procedural").load({})
    snapshot = backend.generate(GenerateRequest(prompt=prompt, width=width, height=height))
    return Scene.create(path, snapshot, operation="pano", prompt=prompt, seed=0, backend="procedural",
                        backend_settings=backend.settings(), modality="depth")
