"""`worldgen serve` with the procedural backend, as a real process on 127.0.0.1: jobs, files, bad
requests (each a 4xx with a one-line JSON reason, the server answering /v1/health afterwards),
several clients at once, cancelling, and a failing job that leaves the server serving."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from worldgen.scene.store import Scene
from worldgen.server.client import Client

from .conftest import wait_for_job

WAIT_S = 60


def _wait(client: Client, job: dict) -> dict:
    return wait_for_job(client, job, WAIT_S)


def _raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request through http.client (so the test controls every header); (status, parsed JSON)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    return response.status, json.loads(data)


def _assert_one_line_error(status, reply, low=400, high=499):
    assert low <= status <= high, (status, reply)
    assert set(reply) == {"error"} and reply["error"] and "\n" not in reply["error"], reply


def _load_glb(path: Path):
    import trimesh

    scene = trimesh.load(path, force="scene")
    assert len(scene.geometry) > 0 and sum(len(g.vertices) for g in scene.geometry.values()) > 0


def test_health_and_schema(procedural_server):
    health = procedural_server.get("/v1/health")
    assert health["status"] == "ok" and health["backend"] == "procedural"
    assert health["workers"] == [{"device": None, "busy": False}]
    assert Path(health["output_root"]) == procedural_server.out.resolve()
    schema = procedural_server.get("/v1/schema")
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False and schema["required"] == ["prompt"]


def test_job_makes_a_scene_and_glb_in_its_dir(procedural_server):
    client = Client(procedural_server.url)
    job = client.submit({"prompt": "a misty fjord at dawn", "size": [256, 64], "seed": 3, "dir": "fjords/2026",
                         "name": "fjord", "regions": [{"prompt": "a lighthouse on a cliff", "azimuth": [0, 90]}]})
    assert job["state"] in ("queued", "running", "done") and job["name"] == "fjord"
    done = _wait(client, job)
    assert done["state"] == "done", done
    folder = procedural_server.out / "fjords" / "2026"
    scene = Scene.open(folder / "fjord")
    record = scene.record()
    assert record["prompt"] == "a misty fjord at dawn" and record["seed"] == 3 and record["size"] == [256, 64]
    assert record["params"]["regions"][0]["azimuth"] == [0.0, 90.0]
    assert scene.load().image.shape == (64, 256, 3)
    _load_glb(folder / "fjord.glb")
    assert done["scene"] == "fjords/2026/fjord" and done["glb"] == "fjords/2026/fjord.glb"
    assert "fjord.glb" in done["files"] and "fjord/scene.json" in done["files"]
    # The same name again is a conflict, not an overwrite.
    status, reply = _raw(procedural_server.url, "POST", "/v1/jobs",
                         json.dumps({"prompt": "another", "dir": "fjords/2026", "name": "fjord"}).encode(),
                         {"Content-Type": "application/json"})
    _assert_one_line_error(status, reply, 409, 409)
    # Its files are served over HTTP, byte for byte, and nothing else is.
    copy = procedural_server.out.parent / "copy"
    Client(procedural_server.url, local_copies=False).download(done, copy / "fjord", copy / "fjord.glb")
    assert (copy / "fjord.glb").read_bytes() == (folder / "fjord.glb").read_bytes()
    assert Scene.open(copy / "fjord").load().image.shape == (64, 256, 3)
    status, reply = _raw(procedural_server.url, "GET", f"/v1/jobs/{done['id']}/files/../../etc/passwd")
    _assert_one_line_error(status, reply, 404, 404)


BAD_BODIES = [
    (b"{not json", 400), (b'{"prompt": "x", "steps": NaN}', 400), (b'{"prompt": "x", "guidance": Infinity}', 400),
    (b'{"prompt": "x", "span": 1e400}', 400), (b"[" * 5000 + b"]" * 5000, 400), (b"\xff\xfe", 400),
    (b'"just a string"', 400), (b"[1, 2]", 400), (b"null", 400), (b'{"seed": ' + b"9" * 5000 + b"}", 400),
]
BAD_JOBS = [
    {}, {"prompt": ""}, {"prompt": 5}, {"prompt": "x", "size": True}, {"prompt": "x", "size": "7x8"},
    {"prompt": "x", "size": "²x8"}, {"prompt": "x", "size": "9" * 30 + "x8"}, {"prompt": "x", "size": [8]},
    {"prompt": "x", "seed": -1}, {"prompt": "x", "seed": 2**64}, {"prompt": "x", "seed": 1.5},
    {"prompt": "x", "steps": "10"}, {"prompt": "x", "steps": 0}, {"prompt": "x", "steps": True},
    {"prompt": "x", "span": 0}, {"prompt": "x", "span": "360"}, {"prompt": "x", "preset": "slow"},
    {"prompt": "x", "preset": 3}, {"prompt": "x", "regions": "0:90=a"}, {"prompt": "x", "regions": [5]},
    {"prompt": "x", "regions": ["/etc/hostname=a boat"]},
    {"prompt": "x", "regions": [{"prompt": "a", "mask": "m.png"}]},
    {"prompt": "x", "regions": ["400:500=a"]}, {"prompt": "x", "regions": ["0:90=a"] * 40},
    {"prompt": "x", "name": "../evil"}, {"prompt": "x", "name": "/abs"}, {"prompt": "x", "name": ".hidden"},
    {"prompt": "x", "dir": "/tmp"}, {"prompt": "x", "dir": "a/../../b"}, {"prompt": "x", "dir": "a//b"},
    {"prompt": "x", "dir": ".serve"}, {"prompt": "x", "dir": 7}, {"prompt": "x", "recipe": "a.toml"},
    {"prompt": "x", "sise": "8x8"}, {"prompt": "x", "negative": ["a"]}, {"prompt": "x" * 3000},
]


@pytest.mark.parametrize("body,status", BAD_BODIES)
def test_malformed_bodies_get_a_400(procedural_server, body, status):
    got, reply = _raw(procedural_server.url, "POST", "/v1/jobs", body, {"Content-Type": "application/json"})
    _assert_one_line_error(got, reply, status, status)


@pytest.mark.parametrize("job", BAD_JOBS, ids=lambda job: json.dumps(job)[:60])
def test_bad_jobs_get_a_400_that_says_why(procedural_server, job):
    status, reply = _raw(procedural_server.url, "POST", "/v1/jobs", json.dumps(job).encode(),
                         {"Content-Type": "application/json"})
    _assert_one_line_error(status, reply, 400, 400)


def test_protocol_faults_get_4xx_and_the_server_goes_on(procedural_server):
    url, json_type = procedural_server.url, {"Content-Type": "application/json"}
    cases = [
        ("GET", "/nope", None, {}, 404), ("GET", "/v1/jobs/0123456789ab", None, {}, 404),
        ("GET", "/v1/jobs/not-an-id", None, {}, 404), ("PUT", "/v1/jobs", b"{}", json_type, 405),
        ("DELETE", "/v1/health", None, {}, 405), ("POST", "/v1/health", b"{}", json_type, 405),
        ("POST", "/v1/jobs", b'{"prompt": "x"}', {"Content-Type": "text/plain"}, 415),
        ("POST", "/v1/jobs", b"x" * (1 << 20), json_type, 413),
        ("GET", "/v1/jobs/0123456789ab?since=x&wait=1", None, {}, 400),
        ("GET", "/v1/jobs/0123456789ab?" + "&".join(f"f{i}=1" for i in range(12)), None, {}, 400),
        ("GET", "/v1/jobs/0123456789ab?since=1&wait=1&nope=2", None, {}, 400),
        ("GET", "/v1/jobs/0123456789ab?since=1e999&wait=nan", None, {}, 400),
        ("POST", "/v1/jobs?dry_run=maybe", b'{"prompt": "x"}', json_type, 400),
        ("GET", "/v1/health", None, {"Origin": "https://evil.example"}, 403),
        ("POST", "/v1/jobs", b'{"prompt": "x"}', {**json_type, "Origin": "null"}, 403),
        ("GET", "/v1/health", None, {"Host": "evil.example:80"}, 403),
    ]
    for method, path, body, headers, status in cases:
        got, reply = _raw(url, method, path, body, headers)
        _assert_one_line_error(got, reply, status, status)
    host, port = urlsplit(url).hostname, urlsplit(url).port
    raw_requests = [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n",  # no length
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ]
    for raw in raw_requests:
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(raw)
            reply = sock.makefile("rb").read()
        assert reply.split(b" ", 2)[1][:1] == b"4", reply[:200]
        assert b'{"error": "' in reply, reply[:300]
    # Clients that stall or leave mid-request: a body promised but never sent in full, a request
    # line cut off. The server must keep answering others while they hang, and afterwards.
    stalled = socket.create_connection((host, port), timeout=30)
    stalled.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n{\"prompt\"")
    half = socket.create_connection((host, port), timeout=30)
    half.sendall(b"GET /v1/hea")
    assert procedural_server.get("/v1/health")["status"] == "ok"
    half.close()
    stalled.close()
    assert procedural_server.get("/v1/health")["status"] == "ok"
    assert procedural_server.proc.poll() is None


def test_several_clients_at_once_are_queued_and_all_complete(procedural_server):
    client = Client(procedural_server.url)
    results: list[dict] = []
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            job = client.submit({"prompt": f"a desert canyon number {index}", "size": [256, 64], "seed": index,
                                 "dir": "crowd"})
            results.append(client.wait(job))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not errors and len(results) == 6, errors
    assert all(job["state"] == "done" for job in results)
    assert len({job["name"] for job in results}) == 6
    for job in results:
        Scene.open(procedural_server.out / job["scene"])
        assert (procedural_server.out / job["glb"]).stat().st_size > 0
    # One worker: the jobs ran one after another, never two at a time.
    spans = sorted((job["started"], job["finished"]) for job in results)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), spans


def test_a_failing_job_reports_one_line_and_the_server_goes_on(procedural_server):
    client = Client(procedural_server.url)
    failed = _wait(client, client.submit({"prompt": "a hill", "size": [256, 64], "modality": "edges", "name": "bad"}))
    assert failed["state"] == "failed" and "procedural backend" in failed["error"] and "\n" not in failed["error"]
    assert not (procedural_server.out / "bad").exists() and not (procedural_server.out / "bad.glb").exists()
    ok = _wait(client, client.submit({"prompt": "a hill", "size": [256, 64], "name": "bad"}))  # the name is free again
    assert ok["state"] == "done"


def test_cancel_a_queued_job(procedural_server):
    client = Client(procedural_server.url)
    # A bigger job first keeps the worker busy while the second one waits in the queue.
    first = client.submit({"prompt": "a wide valley", "size": [4096, 1024], "name": "wide"})
    second = client.submit({"prompt": "a small pond", "size": [256, 64], "name": "pond"})
    cancelled = client.cancel(second["id"])
    assert cancelled["state"] in ("cancelled", "running", "done")
    if cancelled["state"] == "cancelled":
        assert not (procedural_server.out / "pond").exists()
    assert _wait(client, first)["state"] == "done"
    assert _wait(client, second)["state"] in ("cancelled", "done")


def test_procedural_result_equals_a_local_run(procedural_server, tmp_path):
    """The same request served and run locally gives the same world (the procedural backend is deterministic)."""
    from .conftest import run_cli

    home = tmp_path / "home"
    local = run_cli(["pano", "a quiet lake", "--backend", "procedural", "--size", "256x64", "--seed", "5",
                     "-o", "local.glb", "-q"], home, tmp_path)
    assert local.returncode == 0, local.stderr
    served = run_cli(["pano", "a quiet lake", "--server", procedural_server.url, "--size", "256x64", "--seed", "5",
                      "-o", "served/world.glb"], home, tmp_path)
    assert served.returncode == 0, served.stderr
    assert "wrote scene" in served.stderr and "procedural" in served.stderr
    a, b = Scene.open(tmp_path / "local").load(), Scene.open(tmp_path / "served" / "world").load()
    assert np.array_equal(a.image, b.image) and np.array_equal(a.modalities["depth"], b.modalities["depth"])
    assert (tmp_path / "local.glb").read_bytes() == (tmp_path / "served" / "world.glb").read_bytes()
    _load_glb(tmp_path / "served" / "world.glb")
    again = run_cli(["pano", "a quiet lake", "--server", procedural_server.url, "-o", "served/world.glb"],
                    home, tmp_path)
    assert again.returncode == 1 and "already holds a scene" in again.stderr


def test_pano_server_imports_no_torch(procedural_server, tmp_path):
    from .conftest import cli_env

    import subprocess
    import sys

    code = ("import sys\nfrom worldgen.cli.main import cli\n"
            f"cli(['pano', 'a red mesa', '--server', {procedural_server.url!r}, '--size', '256x64', '-q', "
            "'-o', 'mesa.glb'], standalone_mode=False)\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(tmp_path / "home"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "mesa.glb").is_file() and (tmp_path / "mesa" / "scene.json").is_file()


def test_pano_server_options_that_belong_to_the_server_are_refused(procedural_server, tmp_path):
    from .conftest import run_cli

    result = run_cli(["pano", "a hill", "--server", procedural_server.url, "--model", "rgbd", "-o", "h.glb"],
                     tmp_path / "home", tmp_path)
    assert result.returncode == 1 and "worldgen serve --model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "h").exists()


def test_serve_refuses_a_non_loopback_host_without_a_token(tmp_path):
    from .conftest import run_cli

    result = run_cli(["serve", "--host", "0.0.0.0", "--port", "0", "--backend", "procedural", "-o", "out"],
                     tmp_path / "home", tmp_path, timeout=120)
    assert result.returncode == 1 and "WORLDGEN_SERVE_TOKEN" in result.stderr and "token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
