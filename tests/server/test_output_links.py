"""Links inside the server's output root are never followed (issue 26, case 4): not when cleaning
staging at start-up, not when serving a finished world's files, not when publishing a world."""

from __future__ import annotations

import os
import shutil

import pytest

from worldgen.errors import UserInputError
from worldgen.server.client import Client
from worldgen.server.outputs import OutputRoot

from .conftest import run_cli, wait_for_job
from .test_server_http import _raw


@pytest.mark.parametrize("link", [".serve", ".serve/tmp"])
def test_serve_refuses_a_symlinked_staging_folder_and_deletes_nothing(tmp_path, link):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tmp").mkdir(parents=True)
    (elsewhere / "tmp" / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    (out / ".serve").mkdir(parents=True)
    if link == ".serve":
        shutil.rmtree(out / ".serve")
        os.symlink(elsewhere, out / ".serve")
    else:
        os.symlink(elsewhere / "tmp", out / ".serve" / "tmp")
    result = run_cli(["serve", "--port", "0", "--backend", "procedural", "-o", str(out)], tmp_path / "home", tmp_path,
                     timeout=120)
    assert result.returncode == 1, result.stderr
    assert "symlink" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (elsewhere / "tmp" / "keep.txt").read_text() == "mine"


def test_a_link_swapped_into_a_world_is_not_served(procedural_server, tmp_path):
    client = Client(procedural_server.url)
    job = wait_for_job(client, client.submit({"prompt": "a ridge", "size": [256, 64], "name": "ridge"}), 60)
    assert job["state"] == "done"
    relative = next(name for name in job["files"] if name.startswith("ridge/v1/"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / relative.split("/", 2)[2]).write_bytes(b"secret from outside the root")
    version = procedural_server.out / "ridge" / "v1"
    shutil.move(version, tmp_path / "v1-moved")
    os.symlink(outside, version)
    status, reply = _raw(procedural_server.url, "GET", f"/v1/jobs/{job['id']}/files/{relative}")
    assert status == 410 and "gone" in reply["error"], (status, reply)
    # The GLB itself swapped for a link: refused the same way.
    glb = procedural_server.out / "ridge.glb"
    glb.unlink()
    os.symlink(outside / relative.split("/", 2)[2], glb)
    status, reply = _raw(procedural_server.url, "GET", f"/v1/jobs/{job['id']}/files/ridge.glb")
    assert status == 410, (status, reply)


def test_publish_never_creates_folders_through_a_swapped_link(tmp_path):
    root = OutputRoot(tmp_path / "out")
    target = root.reserve(("a", "b"), "world")  # a/ is a real folder now (or will be created as one)
    (tmp_path / "out" / "a").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    staging = root.staging("0123456789ab")
    (staging / "world").mkdir()
    (staging / "world" / "scene.json").write_text("{}")
    (staging / "world.glb").write_bytes(b"glb")
    (tmp_path / "out" / "a").rmdir()
    os.symlink(outside, tmp_path / "out" / "a")  # swapped while the job ran
    with pytest.raises(UserInputError, match="symlink"):
        root.publish(target, staging / "world", staging / "world.glb")
    assert list(outside.iterdir()) == []  # nothing created or moved outside the root
    # Once the link is gone, the same world publishes into a real folder.
    os.unlink(tmp_path / "out" / "a")
    files = root.publish(target, staging / "world", staging / "world.glb")
    assert files == ["world/scene.json", "world.glb"]
    assert (tmp_path / "out" / "a" / "b" / "world.glb").read_bytes() == b"glb"
