"""`worldgen pano --server URL` against fake, hostile servers on 127.0.0.1 (real client processes).

Whoever answers at the URL chooses every byte of every reply; the client must copy nothing it did
not ask for, give up on a wait at its overall limit, and say in one line what was wrong with a
reply it cannot use (never "internal error ... a bug in worldgen").
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from worldgen.server.client import Client
from worldgen.server.outputs import file_identity

from .conftest import cli_env, run_cli, wait_for_job

JOB_ID = "0123456789ab"
SECRET = "the launch codes are 0000"


class FakeServer(ThreadingHTTPServer):
    """Answers POST /v1/jobs and GET /v1/jobs/ID with ``self.job()`` (a dict), and
    /v1/jobs/ID/files/REL with ``self.files[REL]`` (404 for others)."""

    daemon_threads = True

    def __init__(self, job, files: dict | None = None) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.job, self.files = job, files or {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append("POST " + self.path)
        self._reply(202, self.server.job())

    def do_GET(self) -> None:
        self.server.requests.append("GET " + self.path)
        if "/files/" in self.path:
            data = self.server.files.get(unquote(self.path.split("/files/", 1)[1]))
            if data is None:
                return self._reply(404, {"error": "no such file"})
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        self._reply(200, self.server.job())

    do_DELETE = do_GET


@pytest.fixture
def fake_server():
    servers = []

    def start(job, files: dict | None = None) -> FakeServer:
        server = FakeServer(job if callable(job) else (lambda: job), files)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _job(**fields) -> dict:
    job = {"id": JOB_ID, "state": "running", "revision": 1, "position": None, "progress": None, "error": None,
           "name": "world", "files": [], "backend": "procedural"}
    job.update(fields)
    return job


def _pano(url: str, tmp_path: Path, timeout: float = 60, **env):
    import subprocess
    import sys

    home, started = tmp_path / "home", time.monotonic()
    result = subprocess.run([sys.executable, "-m", "worldgen.cli.main", "pano", "a hill", "--server", url, "-o",
                             "out/world.glb"], cwd=tmp_path, env={**cli_env(home), **env}, capture_output=True,
                            text=True, timeout=timeout)
    return result, time.monotonic() - started


def _no_secret_under(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path


def _assert_clear_error(result, *needles) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    last = result.stderr.strip().splitlines()[-1]
    assert "internal error" not in result.stderr and "bug in worldgen" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in last, last


def test_a_hostile_server_cannot_make_the_client_copy_a_local_file(fake_server, tmp_path):
    """Case 1: the server serves a genuine world over HTTP, but its job also lists NAME/secret.txt,
    with a path and identity (stat needs no read permission) that match a file of the user's.
    The client must take the server's bytes for it, never the user's file."""
    made = run_cli(["pano", "a hill", "--backend", "procedural", "--size", "64x32", "-o", "src/world.glb", "-q"],
                   tmp_path / "home", tmp_path)
    assert made.returncode == 0, made.stderr
    served = {path.relative_to(tmp_path / "src").as_posix(): path.read_bytes()
              for path in (tmp_path / "src").rglob("*") if path.is_file()}
    victim = tmp_path / "victim"
    (victim / "world").mkdir(parents=True)
    (victim / "world" / "secret.txt").write_text(SECRET)
    served["world/secret.txt"] = b"what the server sent"
    identities = {"world/secret.txt": file_identity(victim / "world" / "secret.txt")}
    for digests in ({}, {"world/secret.txt": "0" * 64}):  # no digest, then one it could not know
        job = _job(state="done", revision=2, files=sorted(served), path=str(victim), identities=identities,
                   sha256=digests)
        server = fake_server(job, served)
        result, _ = _pano(server.url, tmp_path)
        assert result.returncode == 0, result.stderr  # a valid world: it is written...
        _no_secret_under(tmp_path / "out")  # ...with what the server sent, not the user's file
        assert (tmp_path / "out" / "world" / "secret.txt").read_bytes() == b"what the server sent"
        assert any("/files/world/secret.txt" in request for request in server.requests), server.requests
        import shutil

        shutil.rmtree(tmp_path / "out")


def test_a_reply_for_another_job_is_refused(fake_server, tmp_path):
    replies = iter([_job(id=JOB_ID)] + [_job(id="ffffffffffff", state="done", revision=5)] * 10)
    server = fake_server(lambda: next(replies))
    result, _ = _pano(server.url, tmp_path)
    _assert_clear_error(result, "job id", JOB_ID)


def test_an_unknown_job_state_ends_the_wait_at_once(fake_server, tmp_path):
    """Case 9: a state the client does not know is not polled forever."""
    server = fake_server(_job(state="paused"))
    result, seconds = _pano(server.url, tmp_path)
    _assert_clear_error(result, "unknown job state 'paused'")
    assert seconds < 30


def test_every_wait_has_an_overall_limit(fake_server, tmp_path):
    """Case 9: a job that never ends (answered at once, forever) is given up at the limit."""
    server = fake_server(_job(state="running", revision=3))
    result, seconds = _pano(server.url, tmp_path, WORLDGEN_SERVER_WAIT_S="2")
    _assert_clear_error(result, "has not finished after 2 s", "WORLDGEN_SERVER_WAIT_S")
    assert seconds < 30
    polls = sum(request.startswith("GET /v1/jobs/") for request in server.requests)
    assert polls < 40, polls  # an instant answer with nothing new does not make the client spin


@pytest.mark.parametrize("progress", [{"stage": "denoise", "done": "x", "total": 5}, [1, 2],
                                      {"stage": 3, "done": 1, "total": 5}, {"stage": "a", "done": -1, "total": 2}])
def test_malformed_progress_is_a_clear_message(fake_server, tmp_path, progress):
    """Case 10: a server's malformed progress is named, not reported as a bug in worldgen."""
    server = fake_server(_job(progress=progress))
    result, _ = _pano(server.url, tmp_path)
    _assert_clear_error(result, "malformed progress")


def test_a_bad_wait_limit_is_one_line(fake_server, tmp_path):
    server = fake_server(_job())
    result, _ = _pano(server.url, tmp_path, WORLDGEN_SERVER_WAIT_S="soon")
    _assert_clear_error(result, "WORLDGEN_SERVER_WAIT_S")


def test_a_real_server_on_this_machine_is_still_copied_locally(procedural_server, tmp_path):
    """The shortcut still works when the server vouches for each file with its sha256."""
    client = Client(procedural_server.url)
    job = wait_for_job(client, client.submit({"prompt": "a copse", "size": [256, 64], "name": "copse"}), 60)
    assert job["state"] == "done" and set(job["sha256"]) == set(job["files"])
    for relative in job["files"]:
        assert client._copy_local(job, relative, tmp_path / "copy" / relative), relative
        assert (tmp_path / "copy" / relative).read_bytes() == (procedural_server.out / relative).read_bytes()
    tampered = dict(job, sha256={name: "0" * 64 for name in job["files"]})
    assert not client._copy_local(tampered, "copse.glb", tmp_path / "again.glb")
    assert not (tmp_path / "again.glb").exists()
    result = run_cli(["pano", "a copse", "--server", procedural_server.url, "--size", "256x64", "-o", "c.glb", "-q"],
                     tmp_path / "home", tmp_path)
    assert result.returncode == 0, result.stderr
