"""The service in process: backends loaded once per device and never again, one job at a time per
worker, two workers running two jobs side by side, and output-root escapes refused."""

from __future__ import annotations

import os
import threading
import time

import pytest

from worldgen.errors import UserInputError
from worldgen.registry import get_registry
from worldgen.server.outputs import OutputRoot
from worldgen.server.service import WorldService
from worldgen.specs import BackendSpec

WAIT_S = 60


class GatedBackend:
    """The procedural backend behind a gate: ``generate`` waits at a barrier shared by the workers,
    so the test sees how many jobs run at once (a broken barrier fails the job, never hangs)."""

    def __init__(self, barrier: threading.Barrier, running: list, device) -> None:
        self.inner = get_registry().backend("procedural").load({})
        self.barrier, self.running, self.device = barrier, running, device
        self.active = 0

    def settings(self) -> dict:
        return self.inner.settings()

    def generate(self, request, progress=None):
        self.active += 1
        self.running.append((self.device, self.active))
        try:
            self.barrier.wait(timeout=20)
            return self.inner.generate(request, progress)
        finally:
            self.active -= 1


def _spec(loads: list, barrier, running) -> BackendSpec:
    def load(settings):
        loads.append(dict(settings))
        return GatedBackend(barrier, running, settings.get("device"))

    return BackendSpec(name="gated", description="procedural behind a barrier (tests)", load=load)


def _wait_all(service: WorldService, ids: list[str]) -> list[dict]:
    deadline = time.monotonic() + WAIT_S
    while True:
        jobs = [service.status(job_id) for job_id in ids]
        if all(job["state"] in ("done", "failed", "cancelled") for job in jobs):
            return jobs
        assert time.monotonic() < deadline, jobs
        service.status(ids[0], since=jobs[0]["revision"], wait=0.5)


def test_two_devices_two_workers_loaded_once_each(tmp_path):
    loads, running = [], []
    barrier = threading.Barrier(2)  # released only while two jobs run at the same time
    service = WorldService.load(_spec(loads, barrier, running), {"model": "m"}, ["dev0", "dev1"],
                                OutputRoot(tmp_path / "out"))
    service.start()
    try:
        ids = [service.submit({"prompt": f"a hill {i}", "size": [256, 64], "name": f"hill-{i}"})["id"]
               for i in range(4)]
        jobs = _wait_all(service, ids)
    finally:
        service.stop(timeout=30)
    assert [job["state"] for job in jobs] == ["done"] * 4, jobs
    assert loads == [{"model": "m", "device": "dev0"}, {"model": "m", "device": "dev1"}]  # once per device, no more
    assert {job["device"] for job in jobs} == {"dev0", "dev1"}
    assert all(active == 1 for _, active in running)  # never two jobs on one worker
    for i in range(4):
        assert (tmp_path / "out" / f"hill-{i}" / "scene.json").is_file()


def test_one_worker_runs_one_job_at_a_time(tmp_path):
    loads, running = [], []
    barrier = threading.Barrier(1)
    service = WorldService.load(_spec(loads, barrier, running), {}, [None], OutputRoot(tmp_path / "out"))
    service.start()
    try:
        ids = [service.submit({"prompt": "a dune", "size": [256, 64]})["id"] for _ in range(3)]
        jobs = _wait_all(service, ids)
    finally:
        service.stop(timeout=30)
    assert [job["state"] for job in jobs] == ["done"] * 3 and len(loads) == 1
    spans = sorted((job["started"], job["finished"]) for job in jobs)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2))


def test_symlinks_out_of_the_root_are_refused(tmp_path):
    root = OutputRoot(tmp_path / "out")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, tmp_path / "out" / "link")
    with pytest.raises(UserInputError, match="outside the server's output root"):
        root.reserve(("link",), "world")
    with pytest.raises(UserInputError, match="outside the server's output root"):
        root.reserve(("link", "deeper"), "world")
    os.symlink(outside / "x.glb", tmp_path / "out" / "dangling.glb")
    with pytest.raises(UserInputError, match="already exists"):
        root.reserve((), "dangling")  # a dangling symlink in the way is not overwritten either
    target = root.reserve(("fine",), "world")
    assert target.folder == (tmp_path / "out" / "fine").resolve()
    with pytest.raises(UserInputError, match="already exists"):
        root.reserve(("fine",), "world")  # reserved by a queued job
    root.release(target)
    assert root.reserve(("fine",), "world") == target


def test_submit_after_stop_is_refused(tmp_path):
    service = WorldService.load(get_registry().backend("procedural"), {}, [None], OutputRoot(tmp_path / "out"))
    service.start()
    service.stop(timeout=30)
    from worldgen.server.jobs import ServerStopping

    with pytest.raises(ServerStopping):
        service.submit({"prompt": "a cave"})
    assert not any(p.name != ".serve" for p in (tmp_path / "out").iterdir())


def test_hosts_urls_and_listed_files_are_checked():
    from worldgen.server.client import _check_member, normalize_url
    from worldgen.server.http import check_bind, is_loopback
    from worldgen.errors import WorldgenError

    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.com", ""))
    with pytest.raises(UserInputError, match="needs a token"):
        check_bind("0.0.0.0", token=None)
    with pytest.raises(UserInputError, match="at least 16"):
        check_bind("0.0.0.0", token="short")
    assert check_bind("0.0.0.0", token="x" * 32) is False
    assert check_bind("127.0.0.1", token=None) is True
    assert normalize_url("127.0.0.1:8765/") == "http://127.0.0.1:8765"
    for bad in ("https://127.0.0.1:8765", "ftp://x", "http://", "http://127.0.0.1:99999"):
        with pytest.raises(UserInputError):
            normalize_url(bad)
    _check_member("w/v1/image.png", "w")
    _check_member("w.glb", "w")
    for bad in ("../w.glb", "/etc/passwd", "w/../../x", "other/scene.json", "w", "w/./x", "w\\x", 5):
        with pytest.raises(WorldgenError):
            _check_member(bad, "w")
