"""Real `worldgen serve` processes on 127.0.0.1 (ephemeral ports) for the server tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT_S = 180  # loading the tiny JointNet on a busy 2-core machine
STOP_TIMEOUT_S = 60


def cli_env(home: Path) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WORLDGEN_HOME=str(home), OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", NO_PROXY="*")
    for key in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(key, None)
    return env


def run_cli(args, home: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldgen.cli.main", *args], cwd=cwd, env=cli_env(home),
                          capture_output=True, text=True, timeout=timeout)


def wait_for_job(client, job: dict, timeout: float = 240) -> dict:
    """``client.wait(job)`` bounded by ``timeout`` (a hung server fails the test instead of stalling it)."""
    result: list[dict] = []
    thread = threading.Thread(target=lambda: result.append(client.wait(job)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert result, f"job {job['id']} did not finish in {timeout} s"
    return result[0]


class ServerProcess:
    """`worldgen serve --port 0 ...` as a subprocess; ``url`` is the line it prints when ready."""

    def __init__(self, args, out: Path, home: Path, cwd: Path) -> None:
        self.out = out
        self.stderr_path = cwd / f"serve-{os.getpid()}-{time.monotonic_ns()}.err"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "worldgen.cli.main", "serve", "--port", "0", "-o", str(out),
                                      *args], cwd=cwd, env=cli_env(home), stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        self.url = self._read_url()

    def _read_url(self) -> str:
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        line = found[0].strip() if found else ""
        if not line.startswith("http://127.0.0.1:"):
            self.kill()
            raise AssertionError(f"the server did not start: stdout {line!r}, stderr {self.stderr()[-2000:]}")
        return line

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()

    def get(self, path: str, timeout: float = 30):
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._stderr.closed:
            self._stderr.close()


@pytest.fixture(scope="module")
def server_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-home")


@pytest.fixture(scope="module")
def start_server(tmp_path_factory, server_home):
    """start_server(*args) -> a running ServerProcess (stopped at the end of the module)."""
    started = []

    def start(*args, out: Path | None = None) -> ServerProcess:
        cwd = tmp_path_factory.mktemp("serve-cwd")
        server = ServerProcess(list(args), out or cwd / "out", server_home, cwd)
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()


@pytest.fixture(scope="module")
def procedural_server(start_server) -> ServerProcess:
    return start_server("--backend", "procedural")
