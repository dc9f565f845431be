"""Slow clients, tokens and event streams against real `worldgen serve` processes.

Case 5 of issue 26: 64 clients that send their headers (or body) a byte at a time, and 64 honest
long polls, must not lock anyone out: health answers at once throughout, and every slow request
ends at its time limit (the server runs with --client-timeout 2, so the test is bounded).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest

from worldgen.server.client import Client

from .conftest import cli_env, run_cli, wait_for_job
from .test_server_http import _raw

TOKEN = "a-test-token-that-is-long-enough"


@pytest.fixture(scope="module")
def strict_server(start_server):
    return start_server("--backend", "procedural", "--client-timeout", "2")


def _timed_health(url: str) -> float:
    started = time.monotonic()
    status, reply = _raw(url, "GET", "/v1/health")
    assert status == 200 and reply["status"] == "ok"
    return time.monotonic() - started


class Trickler:
    """Sockets that each get one more byte every 0.3 s until the server closes them."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sockets: list[tuple[socket.socket, bytes]] = []
        self.closed_at: dict[int, float] = {}
        self.replies: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def open(self, payload: bytes, prefix: bytes = b"") -> None:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.sendall(prefix)
        sock.setblocking(False)
        self.sockets.append((sock, payload))

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        sent = 0
        while not self._stop.is_set() and len(self.closed_at) < len(self.sockets):
            for index, (sock, payload) in enumerate(self.sockets):
                if index in self.closed_at:
                    continue
                try:
                    data = sock.recv(4096)
                    if data:
                        self.replies[index] = self.replies.get(index, b"") + data
                    else:
                        self.closed_at[index] = time.monotonic() - self.started
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_at[index] = time.monotonic() - self.started
                    continue
                try:
                    sock.send(payload[sent % len(payload):][:1])
                except OSError:
                    self.closed_at[index] = time.monotonic() - self.started
            sent += 1
            time.sleep(0.3)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock, _ in self.sockets:
            sock.close()


def test_slow_clients_do_not_lock_anyone_out(strict_server):
    url = strict_server.url
    parts = urlsplit(url)
    slow = Trickler(parts.hostname, parts.port)
    for _ in range(64):  # headers a byte at a time, never finished
        slow.open(b"X-Padding: " + b"a" * 200, prefix=b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    slow.open(b"x" * 1000, prefix=b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 1000\r\n\r\n")  # a body a byte at a time
    slow.start()
    try:
        # 64 honest long polls on a finished job (nothing new will come: each waits its full time).
        client = Client(url)
        job = wait_for_job(client, client.submit({"prompt": "a dune", "size": [64, 32]}), 60)
        polls = [threading.Thread(target=_raw, args=(url, "GET", f"/v1/jobs/{job['id']}?since={job['revision']}"
                                                                 f"&wait=4"), daemon=True) for _ in range(64)]
        for poll in polls:
            poll.start()
        times = [_timed_health(url)]
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            times.append(_timed_health(url))
            time.sleep(0.2)
        assert max(times) < 1.0, times  # health answers at once, under load, every time
        assert len(slow.closed_at) == 65, (len(slow.closed_at), slow.closed_at)
        assert max(slow.closed_at.values()) < 5.0, slow.closed_at  # cut off at the 2 s limit (plus one tick)
        body_reply = slow.replies.get(64, b"")
        assert b" 408 " in body_reply.split(b"\r\n", 1)[0] and b'{"error": "' in body_reply, body_reply[:300]
        for poll in polls:
            poll.join(10)
        assert not any(poll.is_alive() for poll in polls)
    finally:
        slow.stop()
    assert strict_server.proc.poll() is None


def test_progress_streams_as_server_sent_events(strict_server):
    client = Client(strict_server.url)
    job = client.submit({"prompt": "a glacier", "size": [256, 64]})
    parts = urlsplit(strict_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(f"GET /v1/jobs/{job['id']}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        raw = sock.makefile("rb").read()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"text/event-stream" in head.lower(), head
    events = [json.loads(line[6:]) for line in _unchunk(body).decode().splitlines() if line.startswith("data: ")]
    assert events and events[-1]["state"] == "done", events[-1:]
    revisions = [event["revision"] for event in events]
    assert revisions == sorted(set(revisions))
    # Reconnecting with the last id seen: only what is newer (nothing), and the stream ends at once.
    status_line = _raw_events(strict_server.url, job["id"], {"Last-Event-ID": str(revisions[-1])})
    assert status_line[0] == 200 and status_line[1] == []


def _raw_events(url: str, job_id: str, headers: dict):
    import http.client

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", f"/v1/jobs/{job_id}/events?since=", headers=headers)
        response = connection.getresponse()
        return response.status, [line for line in response.read().decode().splitlines() if line.startswith("data:")]
    finally:
        connection.close()


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def test_a_token_is_needed_off_loopback_and_checked_on_every_request(tmp_path):
    env = {**cli_env(tmp_path / "home"), "WORLDGEN_SERVE_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "worldgen.cli.main", "serve", "--host", "0.0.0.0", "--port", "0",
                             "--backend", "procedural", "-o", str(tmp_path / "out"), "-q"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://0.0.0.0:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = "http://127.0.0.1:" + line.rsplit(":", 1)[1]
        for path in ("/v1/health", "/openapi.json", "/docs", "/v1/jobs/0123456789ab"):
            status, reply = _raw(url, "GET", path)
            assert status == 401 and "token" in reply["error"], (path, status, reply)
            status, reply = _raw(url, "GET", path, headers={"Authorization": "Bearer wrong-token-of-some-length"})
            assert status == 401, (path, status)
        status, reply = _raw(url, "GET", "/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and reply["status"] == "ok"
        # Off loopback the Host check does not apply, but a foreign web page is still refused.
        status, reply = _raw(url, "GET", "/v1/health", headers={"Authorization": f"Bearer {TOKEN}",
                                                                "Origin": "https://evil.example"})
        assert status == 403
        # The client sends the token from the same variable.
        made = subprocess.run([sys.executable, "-m", "worldgen.cli.main", "pano", "a hill", "--server", url, "--size",
                               "64x32", "-o", "w.glb", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0, made.stderr
        refused = run_cli(["pano", "a hill", "--server", url, "--size", "64x32", "-o", "v.glb"], tmp_path / "home",
                          tmp_path)
        assert refused.returncode == 1 and "WORLDGEN_SERVE_TOKEN" in refused.stderr, refused.stderr
    finally:
        proc.terminate()
        proc.wait(30)
