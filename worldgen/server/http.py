"""The HTTP front of `worldgen serve`: the standard library's ThreadingHTTPServer and one handler.

Every reply is JSON (files excepted), every error one line: ``{"error": "..."}`` with a 4xx for
what the client sent and 500 for a fault of ours (the server goes on). Nothing a client sends is
trusted: bodies are capped, must be JSON objects (no NaN), slow clients time out, connections are
capped, and on a loopback address the Host header must be a loopback name and POST bodies must be
``application/json`` (so a web page in a browser cannot make jobs: both need a CORS pre-flight,
which this server never grants).

Routes (docs/server.md has the details)::

    GET    /v1/health                 the server, its backend, workers and queue
    GET    /v1/schema                 JSON Schema of a job request (and, in $defs, of a job)
    GET    /v1/jobs                   every job kept (id, state, name)
    POST   /v1/jobs                   submit a job -> 202 and the job
    GET    /v1/jobs/ID[?since=R&wait=S]  the job; with since, wait up to S s for a revision > R
    DELETE /v1/jobs/ID                cancel it (queued: at once; running: at its next step)
    GET    /v1/jobs/ID/files/PATH     a file of a finished world (PATH as listed in its files)
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shutil
import socket
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from .. import __version__
from ..errors import UserInputError, WorldgenError
from . import API_PREFIX
from .jobs import QueueFull, ServerStopping
from .outputs import NameTaken
from .schema import JOB_REQUEST_SCHEMA, decode_json
from .service import UnknownJob, WorldService

MAX_BODY = 64 * 1024          # a request is a few hundred bytes; regions and prompts fit many times over
MAX_DRAIN = 4 * 1024 * 1024   # an oversized body up to this is read and dropped, so its 413 reaches the client
MAX_CONNECTIONS = 64
CLIENT_TIMEOUT_S = 20
JOB_ID = re.compile(r"[0-9a-f]{12}")
CONTENT_TYPES = {".glb": "model/gltf-binary", ".json": "application/json", ".png": "image/png"}
LOOPBACK_NAMES = ("localhost",)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def status_for(exc: BaseException) -> int:
    """The HTTP status of a worldgen error raised while answering a request."""
    for kind, status in ((UnknownJob, 404), (NameTaken, 409), (QueueFull, 429), (ServerStopping, 503)):
        if isinstance(exc, kind):
            return status
    return 400 if isinstance(exc, UserInputError) else 422


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit] or "error"


class WorldHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up shutdown
    allow_reuse_address = True

    def __init__(self, address, service: Optional[WorldService], *, loopback_only: bool,
                 on_error: Optional[Callable[[str], None]] = None) -> None:
        self.service = service
        self.loopback_only = loopback_only
        self.on_error = on_error
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):  # too many open connections: drop this one
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        # The default prints a traceback to stderr; library code never prints.
        if self.on_error is not None:
            self.on_error(traceback.format_exc())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: WorldHTTPServer
    server_version = f"worldgen/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers between polls
    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format, *args) -> None:  # the default writes every request to stderr
        pass

    def send_error(self, code, message=None, explain=None) -> None:
        # http.server's own errors (bad request line, unknown method, oversized headers) as JSON too.
        self.close_connection = True
        try:
            self._json(code, {"error": _one_line(message or HTTPStatus(code).phrase)})
        except OSError:
            pass

    # Methods ----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # no route takes these: a 405 that names the methods it does take
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        try:
            self._check_host()
            url = urlsplit(self.path)
            route, params = self._route(url.path)
            allowed = route["methods"]
            if method not in allowed:
                raise HttpError(405, f"{method} is not allowed on {url.path[:100]}; use {' or '.join(allowed)}")
            allowed[method](self, params, parse_qs(url.query, max_num_fields=10))
        except HttpError as exc:
            self._json(exc.status, {"error": _one_line(str(exc))},
                       headers={"Allow": ", ".join(route["methods"])} if exc.status == 405 else None)
        except WorldgenError as exc:
            self._json(status_for(exc), {"error": _one_line(str(exc))})
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away or stalled: nobody to answer
        except Exception as exc:  # our fault: say so in one line and keep serving
            if self.server.on_error is not None:
                self.server.on_error(traceback.format_exc())
            try:
                self._json(500, {"error": _one_line(f"internal error ({type(exc).__name__}: {exc}); the server "
                                                    f"goes on, please report this")})
            except OSError:
                pass

    def _check_host(self) -> None:
        if not self.server.loopback_only:
            return
        host = self.headers.get("Host")
        if host is None:
            return
        if not is_loopback(_host_name(host)):
            raise HttpError(403, f"Host {host[:100]!r} is not this loopback server; connect to 127.0.0.1")

    def _route(self, path: str) -> tuple[dict, dict]:
        if not path.startswith(API_PREFIX + "/"):
            raise HttpError(404, f"no such path {path[:100]!r}; the API is under {API_PREFIX}/ (see GET /v1/schema)")
        parts = path[len(API_PREFIX) + 1:].split("/")
        if parts == ["health"]:
            return {"methods": {"GET": Handler._health}}, {}
        if parts == ["schema"]:
            return {"methods": {"GET": Handler._schema}}, {}
        if parts == ["jobs"]:
            return {"methods": {"GET": Handler._list, "POST": Handler._submit}}, {}
        if len(parts) >= 2 and parts[0] == "jobs":
            if not JOB_ID.fullmatch(parts[1]):
                raise HttpError(404, f"{parts[1][:40]!r} is not a job id; ids come from POST /v1/jobs")
            if len(parts) == 2:
                return {"methods": {"GET": Handler._status, "DELETE": Handler._cancel}}, {"id": parts[1]}
            if len(parts) >= 4 and parts[2] == "files":
                return {"methods": {"GET": Handler._file}}, {"id": parts[1], "file": unquote("/".join(parts[3:]))}
        raise HttpError(404, f"no such path {path[:100]!r}; see docs/server.md or GET /v1/schema")

    # Routes -----------------------------------------------------------------------------------
    def _health(self, params, query) -> None:
        self._json(200, self.server.service.health())

    def _schema(self, params, query) -> None:
        self._json(200, JOB_REQUEST_SCHEMA)

    def _list(self, params, query) -> None:
        self._json(200, {"jobs": self.server.service.jobs()})

    def _submit(self, params, query) -> None:
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HttpError(415, f"send the job as Content-Type: application/json, not {kind[:60] or 'nothing'}")
        body = decode_json(self._body())
        job = self.server.service.submit(body)
        self._json(202, job, headers={"Location": f"{API_PREFIX}/jobs/{job['id']}"})

    def _status(self, params, query) -> None:
        since = _query_number(query, "since", int, 0, 2**62)
        wait = _query_number(query, "wait", float, 0.0, 3600.0) or 0.0
        self._json(200, self.server.service.status(params["id"], since=since, wait=wait))

    def _cancel(self, params, query) -> None:
        self._json(200, self.server.service.cancel(params["id"]))

    def _file(self, params, query) -> None:
        path = self.server.service.file(params["id"], params["file"])
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise HttpError(410, f"{params['file'][:120]} is gone from the server's output root") from None
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"))
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(handle, self.wfile, 1 << 20)

    # Plumbing ---------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "chunked bodies are not accepted; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HttpError(411, "send a Content-Length header with the JSON body")
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            raise HttpError(400, f"Content-Length {raw[:40]!r} is not a byte count") from None
        if length > MAX_BODY:
            self.close_connection = True
            if length <= MAX_DRAIN:
                self.rfile.read(length)
            raise HttpError(413, f"the body has {length} bytes; a job request must stay under {MAX_BODY}")
        data = self.rfile.read(length)
        if len(data) < length:
            raise ConnectionError("the client closed the connection mid-body")
        return data

    def _json(self, status: int, payload, headers: Optional[dict] = None) -> None:
        data = (json.dumps(payload, allow_nan=False) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _host_name(host: str) -> str:
    """The name in a Host header: "127.0.0.1:8765" -> 127.0.0.1, "[::1]:8765" -> ::1."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _query_number(query: dict, key: str, kind, low, high):
    values = query.get(key)
    if not values:
        return None
    try:
        value = kind(values[-1])
    except ValueError:
        raise HttpError(400, f"?{key}= must be a number, not {values[-1][:40]!r}") from None
    if not (isinstance(value, int) or math.isfinite(value)) or not low <= value <= high:
        raise HttpError(400, f"?{key}= must be between {low} and {high}")
    return value


def check_host(host: str, allow_remote: bool) -> bool:
    """Whether ``host`` is loopback; a non-loopback one is refused unless ``allow_remote``."""
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise UserInputError(f"host {host!r} is not a loopback address; the server has no authentication, so it "
                             f"binds 127.0.0.1 unless you pass --allow-remote")
    return loopback


def make_server(service: Optional[WorldService], host: str = "127.0.0.1", port: int = 0, *,
                allow_remote: bool = False, on_error: Optional[Callable[[str], None]] = None) -> WorldHTTPServer:
    """Bind (port 0: any free port; see ``.url``). A non-loopback host needs ``allow_remote``.
    ``service`` may be set later (bind first, load models, then serve): requests are answered
    only once ``serve_forever`` runs."""
    loopback = check_host(host, allow_remote)
    try:
        return WorldHTTPServer((host, port), service, loopback_only=loopback, on_error=on_error)
    except OSError as exc:
        raise UserInputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
                             f"(0 takes any free one)") from None
