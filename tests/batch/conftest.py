"""Fixtures for the batch tests: the procedural backend (fast, deterministic) and small worlds.

Helpers are fixtures (not imports) because the suite runs with --import-mode=importlib.
"""

import json
from pathlib import Path

import pytest

from worldgen.scene.atomic import atomic_write_bytes
from worldgen.batch import JobDefaults, PanoWorldMaker, load_jobs
from worldgen.registry import get_registry

SMALL = JobDefaults(width=64, height=16, steps=1)


def _glb_export(snapshot, path: Path) -> None:
    """The registered GLB exporter, written atomically (what `pano` does through export_files)."""
    atomic_write_bytes(path, get_registry().exporter("glb").export(snapshot, {}))


def _write_jobs(folder: Path, lines: list, name: str = "jobs.jsonl", raw: bool = False) -> Path:
    """A JSONL file of ``lines`` (each JSON-encoded; with ``raw``, strings are written as they are)."""
    path = folder / name
    path.write_text("".join((line if raw and isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _world_files(out: Path) -> dict[str, bytes]:
    """Every file a batch leaves in OUT except its own bookkeeping (.batch/), with scene.json's
    creation times removed: those are the only bytes that legitimately differ between two runs."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if path.is_dir() or rel.parts[0] == ".batch":
            continue
        data = path.read_bytes()
        if path.name == "scene.json":
            manifest = json.loads(data)
            manifest.pop("created", None)
            for version in manifest["versions"]:
                version.pop("created", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        files[str(rel)] = data
    return files


@pytest.fixture
def maker():
    """A fresh world maker on the procedural backend (a factory: each call, a new process's maker)."""
    return lambda: PanoWorldMaker(get_registry().backend("procedural"), {}, export=_glb_export)


@pytest.fixture
def write_jobs():
    return _write_jobs


@pytest.fixture
def small_jobs(tmp_path):
    """Jobs parsed from JSONL lines, with small-world defaults (64x16)."""
    def make(lines: list, batch_seed: int = 0, folder: Path = tmp_path):
        return load_jobs(_write_jobs(folder, lines), SMALL, batch_seed=batch_seed)
    return make


@pytest.fixture
def world_files():
    return _world_files


@pytest.fixture
def count_generate(monkeypatch):
    """A spy on the procedural backend's generate(): the prompts it was called with, in order."""
    from worldgen.backends.procedural import ProceduralBackend

    calls = []
    original = ProceduralBackend.generate

    def spy(self, request, progress=None):
        calls.append(request.prompt)
        return original(self, request, progress)

    monkeypatch.setattr(ProceduralBackend, "generate", spy)
    return calls
