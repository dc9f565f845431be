"""A client of `worldgen serve`, for `worldgen pano --server URL`: submit, follow, download.

Standard library only (urllib), so a client process never imports torch or diffusers: its cost
per world is a Python start and a few loopback requests. The finished world is fetched file by
file (the server lists them; each name is checked to stay inside the world) into a staging folder
beside the destination, checked as a scene, and moved into place GLB first, scene folder last:
the same two outputs a local `worldgen pano` writes, whether the server runs here or elsewhere.
A file the server wrote on this very machine (same device, inode and size) may be copied from its
path instead of downloaded, but the client trusts nothing it did not ask for: only files of the
job it submitted, named inside that world, and only a copy whose sha256 is the one the server
published for the file is kept (a server, or whoever answers at the URL, that cannot read a file
cannot name its digest); anything else comes over HTTP.

Every reply is checked before use (a job's state, revision and progress), so a server that sends
something else gets a one-line error naming it, and every wait has an overall limit
(``WORLDGEN_SERVER_WAIT_S``, default 6 hours).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Optional
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit
from urllib.request import ProxyHandler, Request, build_opener

from ..errors import UserInputError, WorldgenError
from ..progress import ProgressCallback, ProgressEvent
from . import API_PREFIX

START_HINT = "start it with `worldgen serve` (or pass the URL it printed to --server)"
TERMINAL = ("done", "failed", "cancelled")
STATES = ("queued", "running", *TERMINAL)
POLL_WAIT_S = 10     # each status request waits up to this long for a change (long poll)
REQUEST_TIMEOUT_S = 30
WAIT_LIMIT_ENV = "WORLDGEN_SERVER_WAIT_S"
WAIT_LIMIT_S = 6 * 3600.0  # the longest `pano --server` follows one job (queue and run) before giving up
TOKEN_ENV = "WORLDGEN_SERVE_TOKEN"
CHUNK = 1 << 20


class ServerUnavailable(WorldgenError):
    """Nothing (or not a worldgen server) answers at the URL."""


class ServerReplyError(WorldgenError):
    """The server answered, but with something a worldgen server does not send."""


def wait_limit() -> float:
    """The overall limit of a client's wait: WORLDGEN_SERVER_WAIT_S seconds, else 6 hours."""
    text = os.environ.get(WAIT_LIMIT_ENV, "").strip()
    if not text:
        return WAIT_LIMIT_S
    try:
        value = float(text)
        if not 0 < value < 1e9:
            raise ValueError
    except ValueError:
        raise UserInputError(f"{WAIT_LIMIT_ENV}={text[:40]!r} is not a number of seconds; e.g. 3600") from None
    return value


def normalize_url(url: str) -> str:
    """``127.0.0.1:8765`` -> ``http://127.0.0.1:8765``; only plain http (the server speaks nothing else)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise UserInputError(f"--server {url!r} is not an http://HOST:PORT URL, e.g. http://127.0.0.1:8765")
    try:
        parts.port
    except ValueError:
        raise UserInputError(f"--server {url!r} has a bad port; e.g. http://127.0.0.1:8765") from None
    return f"http://{parts.netloc}{parts.path.rstrip('/')}"


class Client:
    def __init__(self, url: str, local_copies: bool = True) -> None:
        self.url = normalize_url(url)
        self.local_copies = local_copies  # copy files the server wrote on this machine instead of downloading
        self.token = os.environ.get(TOKEN_ENV) or None
        # No proxies: the server is local in the common case, and a proxy would see every request.
        self._opener = build_opener(ProxyHandler({}))

    # Requests ---------------------------------------------------------------------------------
    def _open(self, method: str, path: str, payload=None, timeout: float = REQUEST_TIMEOUT_S):
        data = None if payload is None else json.dumps(payload, allow_nan=False).encode("utf-8")
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = Request(self.url + API_PREFIX + path, data=data, method=method, headers=headers)
        try:
            return self._opener.open(request, timeout=timeout)
        except HTTPError as exc:
            reason = _reason(exc)
            if exc.code < 500:
                raise UserInputError(f"the server refused the request: {reason}") from None
            raise WorldgenError(f"the server at {self.url} failed ({exc.code}): {reason}") from None
        except (URLError, OSError, http.client.HTTPException) as exc:
            why = getattr(exc, "reason", None) or exc
            raise ServerUnavailable(f"no worldgen server answers at {self.url} ({_short(why)}); {START_HINT}") from None

    def call(self, method: str, path: str, payload=None, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        try:
            with self._open(method, path, payload, timeout) as response:
                body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ServerUnavailable(f"the server at {self.url} stopped answering ({_short(exc)}); "
                                    f"{START_HINT}") from None
        try:
            value = json.loads(body)
            if not isinstance(value, dict):
                raise ValueError("not an object")
        except ValueError:
            raise ServerUnavailable(f"{self.url} answered, but not as `worldgen serve` does; check the port, or "
                                    f"{START_HINT}") from None
        return value

    def health(self) -> dict:
        return self.call("GET", "/health")

    def submit(self, payload: dict) -> dict:
        return self.checked_job(self.call("POST", "/jobs", payload))

    def status(self, job_id: str, since: Optional[int] = None, wait: float = 0.0) -> dict:
        query = "" if since is None else f"?since={since}&wait={wait:g}"
        return self.checked_job(self.call("GET", f"/jobs/{job_id}{query}", timeout=wait + REQUEST_TIMEOUT_S), job_id)

    def cancel(self, job_id: str) -> dict:
        return self.call("DELETE", f"/jobs/{job_id}", timeout=5)

    def wait(self, job: dict, progress: Optional[ProgressCallback] = None, limit: Optional[float] = None) -> dict:
        """Follow a job until it ends, forwarding its progress (worldgen's one progress shape);
        ``ServerReplyError`` after ``limit`` seconds (default: ``wait_limit()``)."""
        limit = wait_limit() if limit is None else limit
        deadline, shown = time.monotonic() + limit, None
        while True:
            shown = _forward(job, shown, progress)
            if job["state"] in TERMINAL:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerReplyError(f"job {job['id']} on {self.url} has not finished after {limit:g} s (it is "
                                       f"{job['state']}); gave up waiting (raise {WAIT_LIMIT_ENV} to wait longer); "
                                       f"the job may still finish on the server")
            asked = time.monotonic()
            newer = self.status(job["id"], since=job["revision"], wait=min(POLL_WAIT_S, max(remaining, 0.1)))
            if newer["revision"] <= job["revision"] and time.monotonic() - asked < 0.05:
                time.sleep(min(0.2, remaining))  # a server that answers at once with nothing new: do not spin
            job = newer

    def checked_job(self, value: dict, job_id: Optional[str] = None) -> dict:
        """A job reply with the fields this client uses checked (``ServerReplyError`` otherwise)."""
        return check_job_reply(value, self.url, job_id)

    # Results ----------------------------------------------------------------------------------
    def download(self, job: dict, scene_dir: Path, glb: Path, progress: Optional[ProgressCallback] = None) -> None:
        """The finished job's scene folder and GLB, at ``scene_dir`` and ``glb``."""
        name, files = job["name"], list(job.get("files") or [])
        for relative in files:
            _check_member(relative, name)
        if f"{name}.glb" not in files or f"{name}/scene.json" not in files:
            raise WorldgenError(f"the server's job {job['id']} lists no scene or GLB; this is a bug in the server")
        scene_dir, glb = Path(scene_dir), Path(glb)
        scene_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = scene_dir.parent / f".{scene_dir.name}.{secrets.token_hex(6)}.download"
        try:
            staging.mkdir()
            for done, relative in enumerate(files):
                _report(progress, "download", done, len(files), relative)
                if not self._copy_local(job, relative, staging / relative):
                    self._fetch(job["id"], relative, staging / relative)
            _report(progress, "download", len(files), len(files), "done")
            from ..scene.store import Scene

            Scene.open(staging / name)  # a scene that validates, or nothing is moved into place
            glb.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / f"{name}.glb", glb)
            if scene_dir.is_dir() and not any(scene_dir.iterdir()):
                scene_dir.rmdir()  # an empty folder of that name, as a local run would fill it
            os.rename(staging / name, scene_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _copy_local(self, job: dict, relative: str, destination: Path) -> bool:
        """Copy the file from the server's own path when this machine has that very file (same
        device, inode and size as the server reports) and the copy's sha256 is the one the server
        published: a server on this machine costs a local copy, and a server that names a file it
        could not read itself gets nothing (the copy is dropped and the file downloaded)."""
        want = (job.get("identities") or {}).get(relative)
        digest = (job.get("sha256") or {}).get(relative)
        if not (self.local_copies and isinstance(want, str) and isinstance(digest, str) and len(digest) == 64
                and isinstance(job.get("path"), str)):
            return False
        from .outputs import file_identity

        source = Path(job["path"]) / relative
        try:
            if file_identity(source) != want:
                return False
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as src, open(destination, "wb") as dst:
                hasher = hashlib.sha256()
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
            if hmac_equal(hasher.hexdigest(), digest.lower()):
                return True
        except OSError:  # not here after all, or unreadable: download it
            pass
        destination.unlink(missing_ok=True)  # never keep what the server could not vouch for
        return False

    def _fetch(self, job_id: str, relative: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._open("GET", f"/jobs/{job_id}/files/{quote(relative)}", timeout=60) as response, \
                    open(destination, "wb") as handle:
                expected = response.headers.get("Content-Length")
                _copy(response, handle)
                written = handle.tell()
        except (OSError, http.client.HTTPException) as exc:
            raise ServerUnavailable(f"downloading {relative} from {self.url} failed ({_short(exc)}); "
                                    f"retry, or {START_HINT}") from None
        if expected is not None and (not expected.isdecimal() or int(expected) != written):
            raise ServerUnavailable(f"{relative} arrived incomplete ({written} of {expected} bytes); retry")


def make_world(url: str, payload: dict, scene_dir: Path, glb: Path,
               progress: Optional[ProgressCallback] = None) -> dict:
    """Submit ``payload`` (a job request, docs/server.md), wait, and download the world to
    ``scene_dir`` + ``glb``. Returns the finished job. Ctrl-C cancels the job on the server."""
    client = Client(url)
    job = client.submit(payload)
    try:
        job = client.wait(job, progress)
    except KeyboardInterrupt:
        try:
            client.cancel(job["id"])
        except WorldgenError:
            pass
        raise
    if job["state"] == "failed":
        raise WorldgenError(f"the server could not make this world: {job.get('error') or 'no reason given'}")
    if job["state"] == "cancelled":
        raise WorldgenError(f"the job was cancelled on the server ({job.get('error') or 'no reason given'}); "
                            f"submit it again")
    client.download(job, scene_dir, glb, progress)
    return job


# Helpers --------------------------------------------------------------------------------------

def hmac_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def check_job_reply(value: dict, url: str, job_id: Optional[str] = None) -> dict:
    """``value`` if it is a job as `worldgen serve` sends it (for the job asked about), else a
    one-line ``ServerReplyError`` naming what is wrong."""
    def bad(what: str) -> ServerReplyError:
        return ServerReplyError(f"the server at {url} sent a job reply this client cannot use ({what}); check that "
                                f"the URL is a worldgen server of this version (`worldgen serve`)")

    if not isinstance(value.get("id"), str) or (job_id is not None and value["id"] != job_id):
        raise bad(f"job id {_short(value.get('id'))[:40]!r}" + (f", asked for {job_id}" if job_id else ""))
    state = value.get("state")
    if state not in STATES:
        raise bad(f"unknown job state {_short(state)[:40]!r}; known: {', '.join(STATES)}")
    if not _whole(value.get("revision")):
        raise bad(f"revision {_short(value.get('revision'))[:40]!r} is not a whole number")
    p = value.get("progress")
    if p is not None and not (isinstance(p, dict) and _whole(p.get("done")) and _whole(p.get("total"))
                              and isinstance(p.get("stage"), str) and isinstance(p.get("detail", ""), str)):
        raise bad(f"malformed progress {_short(json.dumps(p))[:80]}")
    if value.get("position") is not None and not _whole(value.get("position")):
        raise bad("malformed queue position")
    if state == "done" and not (isinstance(value.get("name"), str) and isinstance(value.get("files"), list)):
        raise bad("a finished job without a name or a files list")
    return value


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _forward(job: dict, shown, progress: Optional[ProgressCallback]):
    """Send the job's queue position or progress to ``progress`` when it changed; returns what was shown."""
    if progress is None:
        return None
    state, p = job.get("state"), job.get("progress")
    if state == "queued":
        current = ("queue", 0, 1, f"{job.get('position') or 0} jobs ahead")
    elif isinstance(p, dict):  # checked by check_job_reply
        current = (p["stage"][:40], p["done"], max(p["total"], 1), p.get("detail", "")[:200])
    else:
        current = ("queue", 1, 1, "started") if state == "running" else shown
    if current != shown and current is not None:
        if shown is not None and shown[0] == "queue" and current[0] != "queue" and shown[1] < shown[2]:
            progress(ProgressEvent("queue", 1, 1, "started"))  # close the queue bar
        progress(ProgressEvent(*current))
    return current


def _copy(response, handle) -> None:
    """Response body to file through one reused buffer: HTTPResponse.read(n) allocates n bytes per
    call and a socket hands over far less than a megabyte at a time (measured: 20x slower)."""
    buffer = memoryview(bytearray(CHUNK))
    while True:
        count = response.readinto(buffer)
        if not count:
            return
        handle.write(buffer[:count])


def _report(progress: Optional[ProgressCallback], stage: str, done: int, total: int, detail: str) -> None:
    if progress is not None:
        progress(ProgressEvent(stage, done, total, detail))


def _check_member(relative: str, name: str) -> None:
    """A file the server lists must be NAME.glb or inside NAME/: no absolute paths, no ``..``."""
    ok = (isinstance(relative, str) and isinstance(name, str) and "\\" not in relative
          and not PurePosixPath(relative).is_absolute()
          and all(part not in ("", ".", "..") for part in relative.split("/"))
          and (relative == f"{name}.glb" or (relative.count("/") >= 1 and relative.split("/")[0] == name)))
    if not ok:
        raise WorldgenError(f"the server listed the file {relative!r}, which is not inside the world {name!r}; "
                            f"refusing to download it")


def _reason(exc: HTTPError) -> str:
    try:
        return _short(json.loads(exc.read()).get("error") or exc.reason)
    except Exception:  # not our JSON: the status line says enough
        return _short(exc.reason or exc.code)


def _short(value) -> str:
    return " ".join(str(value).split())[:300] or type(value).__name__


def wait_until_ready(url: str, timeout: float = 60.0) -> dict:
    """Poll /v1/health until the server answers (for scripts that just started one)."""
    client, deadline = Client(url), time.monotonic() + timeout
    while True:
        try:
            return client.health()
        except ServerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
