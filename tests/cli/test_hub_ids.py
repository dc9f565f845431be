"""Hub ids (org/name) for --base and `models add`, read from a local cache laid out as huggingface_hub
lays out its own (models--org--name/snapshots/REV + refs/main), offline (issue 25)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_model(cache: Path, repo: str, source: Path, card: str = "") -> Path:
    """As huggingface_hub lays a model out: each snapshot file a symlink to a content-named blob."""
    import hashlib

    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / REVISION
    shutil.copytree(source, snapshot)
    if card:
        (snapshot / "README.md").write_text(card)
    (folder / "blobs").mkdir()
    for path in [p for p in snapshot.rglob("*") if p.is_file()]:
        blob = folder / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        if not blob.exists():
            path.rename(blob)
        else:
            path.unlink()
        path.symlink_to(os.path.relpath(blob, path.parent))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture
def hub(tmp_path, tiny_checkpoint):
    cache = tmp_path / "hub"
    cache_model(cache, "tiny-org/sd-tiny-base", tiny_checkpoint / "base")
    checkpoint = tmp_path / "no-base-checkpoint"
    shutil.copytree(tiny_checkpoint, checkpoint, ignore=shutil.ignore_patterns("base"))
    cache_model(cache, "tiny-org/jointnet-tiny", checkpoint, card="---\nlicense: openrail++\ntags: [rgbd]\n---\n# tiny\n")
    return cache


def worldgen(*args, cwd, cache):
    exe = Path(sys.executable).with_name("worldgen")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), OMP_NUM_THREADS="1",
               WORLDGEN_HOME=str(cwd / "home"))
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_models_add_and_base_take_hub_ids_from_the_cache_offline(tmp_path, hub):
    added = worldgen("models", "add", "tiny-org/jointnet-tiny", "--name", "jt", "--base", "tiny-org/sd-tiny-base",
                     "--no-convert", "--json", "-q", cwd=tmp_path, cache=hub)
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)
    assert entry["path"].startswith(str(hub)) and entry["base"].startswith(str(hub))
    assert entry["license"] == "openrail++"  # from the model card
    assert entry["weights_sha256"] and all(len(h) == 64 for h in entry["weights_sha256"].values())
    listing = worldgen("models", "list", cwd=tmp_path, cache=hub)
    assert "licence openrail++" in listing.stdout, listing.stdout
    made = worldgen("pano", "a lake", "--model", "jt", "--device", "cpu", "--size", "64x16", "--steps", "1",
                    "-o", "w.glb", "-q", cwd=tmp_path, cache=hub)
    assert made.returncode == 0, made.stderr
    # --base as a Hub id on an unregistered checkpoint folder
    folder = next((hub / "models--tiny-org--jointnet-tiny" / "snapshots").iterdir())
    direct = worldgen("pano", "a lake", "--model", folder, "--base", "tiny-org/sd-tiny-base", "--device", "cpu",
                      "--size", "64x16", "--steps", "1", "-o", "d.glb", "-q", cwd=tmp_path, cache=hub)
    assert direct.returncode == 0, direct.stderr


def test_an_uncached_hub_id_offline_is_one_line_naming_the_fix(tmp_path, hub):
    missing = worldgen("models", "add", "tiny-org/not-there", "--name", "x", cwd=tmp_path, cache=hub)
    assert missing.returncode == 1
    assert "HF_HUB_OFFLINE" in missing.stderr and "huggingface-cli download tiny-org/not-there" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
