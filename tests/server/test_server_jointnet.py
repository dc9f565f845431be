"""`worldgen serve` with a tiny JointNet model on the CPU, as a real process: each job's own preset
used by the resident model (never changed on it), `pano --server` giving what a local run gives, and SIGTERM during a job
leaving no half-written world. The tests share one server; the last one stops it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from worldgen.scene.store import Scene
from worldgen.server.client import Client

from .conftest import run_cli, wait_for_job

WAIT_S = 240


@pytest.fixture(scope="module")
def tiny_server(start_server, tiny_checkpoint):
    return start_server("--model", str(tiny_checkpoint), "--device", "cpu", "--preset", "fast")


def _wait(client: Client, job: dict) -> dict:
    return wait_for_job(client, job, WAIT_S)


def test_presets_switch_per_job_on_the_resident_model(tiny_server):
    client = Client(tiny_server.url)
    health = client.health()
    assert health["backend"] == "jointnet" and health["preset"] == "fast"
    assert health["workers"] == [{"device": "cpu", "busy": False}]
    fast = _wait(client, client.submit({"prompt": "a small island", "size": [256, 64], "name": "fast"}))
    published = _wait(client, client.submit({"prompt": "a small island", "size": [256, 64], "steps": 2,
                                             "preset": "published", "name": "published"}))
    assert fast["state"] == published["state"] == "done", (fast, published)
    fast_record = Scene.open(tiny_server.out / "fast").record()
    published_record = Scene.open(tiny_server.out / "published").record()
    assert fast_record["params"]["steps"] == 14  # the fast preset's own step count
    assert published_record["params"]["steps"] == 2
    assert fast["request"]["preset"] == "fast" and published["request"]["preset"] == "published"
    # The preset travels with each job (GenerateRequest.preset) and the manifest records the one that
    # ran, in params and in the backend's settings alike (published is the settings' default, left out),
    # although the resident backend was loaded with --preset fast. That the published job really ran
    # the published recipe is checked against a local run in the next test.
    assert fast_record["params"]["preset"] == fast_record["backend"]["settings"]["preset"] == "fast"
    assert published_record["params"]["preset"] == "published"
    assert "preset" not in published_record["backend"]["settings"]
    assert fast["progress"]["stage"] in ("denoise", "decode")
    # Loaded once: one load message, and the load time reported at start-up has not changed.
    assert tiny_server.stderr().count("loading jointnet once") == 1
    assert client.health()["load_seconds"] == health["load_seconds"]


def test_pano_server_gives_what_a_local_run_gives(tiny_server, tiny_checkpoint, tmp_path):
    home = tmp_path / "home"
    # The server was started with --preset fast; this job asks for published, so it matches a local
    # published run only if the request's preset, not the loaded one, drives the sampler.
    common = ["a small island", "--size", "256x64", "--steps", "2", "--seed", "4", "--preset", "published"]
    local = run_cli(["pano", *common, "--model", str(tiny_checkpoint), "--device", "cpu", "-o", "local.glb", "-q"],
                    home, tmp_path)
    assert local.returncode == 0, local.stderr
    served = run_cli(["pano", *common, "--server", tiny_server.url, "-o", "served.glb"], home, tmp_path)
    assert served.returncode == 0, served.stderr
    a, b = Scene.open(tmp_path / "local").load(), Scene.open(tmp_path / "served").load()
    assert a.image.shape == b.image.shape == (64, 256, 3)
    np.testing.assert_allclose(a.image, b.image, atol=2e-3)
    np.testing.assert_allclose(a.modalities["depth"], b.modalities["depth"], atol=2e-3)
    assert Scene.open(tmp_path / "served").record()["backend"]["name"] == "jointnet"
    assert (tmp_path / "served.glb").stat().st_size > 0


def test_sigterm_during_a_job_leaves_no_half_written_world(tiny_server):
    client = Client(tiny_server.url)
    long = client.submit({"prompt": "a long valley", "size": [256, 64], "steps": 900, "name": "long"})
    queued = [client.submit({"prompt": "a lake", "size": [256, 64], "steps": 2, "name": f"queued-{i}"})
              for i in range(2)]
    deadline = time.monotonic() + WAIT_S
    job = long
    while not (job["state"] == "running" and job["progress"] and job["progress"]["stage"] == "denoise"):
        assert time.monotonic() < deadline and job["state"] in ("queued", "running"), job
        job = client.status(long["id"], since=job["revision"], wait=5)
    assert tiny_server.terminate() == 0, tiny_server.stderr()[-2000:]
    for name in ("long", *(q["name"] for q in queued)):
        assert not (tiny_server.out / name).exists() and not (tiny_server.out / f"{name}.glb").exists()
    staging = tiny_server.out / ".serve" / "tmp"
    assert not staging.exists() or not any(staging.iterdir())
    log = tiny_server.stderr()
    assert f"job {long['id']} cancelled" in log and "stopped" in log
    # Earlier worlds are untouched.
    Scene.open(tiny_server.out / "fast")
    assert (tiny_server.out / "fast.glb").is_file()
