"""Four real `worldgen models add` processes at once (issue 26, case 2): every registration they
report is in the index afterwards, and every folder the store unpacked belongs to a listed model.
Without a lock each process read the index, added its entry and rewrote it, so the last writer
erased the others' entries (exit 0 all the same) and their unpacked zips stayed unlisted."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from processes import run_together
from reliability_support import fixture_dir

NAMES = [f"m{k}" for k in range(4)]


def _zip_of_fixture(path: Path) -> Path:
    model = fixture_dir() / "model"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(model.rglob("*")):
            if file.is_file():
                zf.write(file, "rgbd_finetune_sd21b/" + str(file.relative_to(model)))
    return path


@pytest.mark.parametrize("source", ["zip", "folder"])
def test_four_parallel_adds_all_stay_registered(tmp_path, source):
    home = tmp_path / "home"
    src = _zip_of_fixture(tmp_path / "rgbd.zip") if source == "zip" else fixture_dir() / "model"
    # Conversion on: each process also rewrites the index a second time (its converted copy).
    results = run_together([["models", "add", src, "--name", name, "--dtype", "float32"] for name in NAMES],
                           cwd=tmp_path, timeout=300, env={"WORLDGEN_HOME": str(home)})
    failures = [err for code, err in results if code != 0]
    assert not failures, f"{len(failures)} of 4 adds failed; first:\n{failures[0]}"

    index = json.loads((home / "models.json").read_text())
    assert sorted(index["models"]) == NAMES
    for name in NAMES:
        assert "float32" in index["models"][name]["converted"], f"{name}'s converted copy was not recorded"
    unpacked = sorted(p.name for p in (home / "models").iterdir() if not p.name.startswith("."))
    assert unpacked == (NAMES if source == "zip" else []), "an unpacked folder belongs to no listed model"
    assert sorted(p.name for p in (home / "models" / ".converted").iterdir()) == NAMES
