"""The routes of `worldgen serve` (FastAPI): jobs, their progress as server-sent events, files.

Every reply is JSON (files and event streams excepted) and every error one line,
``{"error": "..."}``, with a 4xx for what the client sent and 500 for a fault of ours (the server
goes on). The request body is read here, not by FastAPI, so its size, type and JSON (no NaN) are
checked before the model sees it; the model (``worldgen.requests.WorldRequest``) is also what the
published schema (``/openapi.json``, ``/v1/schema``) is generated from.

Waiting never holds a thread: a long poll or an event stream awaits ``Changes``, which the job
board pokes from its worker threads, so slow or idle clients cost the event loop nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import traceback
from typing import Callable, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UserInputError, WorldgenError
from ..world.advice import known_fault, message_for
from . import API_PREFIX
from .jobs import TERMINAL, QueueFull, ServerStopping
from .outputs import LinkRefused, NameTaken, open_file
from .schema import JOB_SCHEMA, request_schema, decode_json
from .service import MAX_WAIT_S, UnknownJob, WorldService

MAX_BODY = 64 * 1024          # a request is a few hundred bytes; regions and prompts fit many times over
MAX_DRAIN = 4 * 1024 * 1024   # an oversized body up to this is read and dropped, so its 413 reaches the client
MAX_QUERY_FIELDS = 10
STREAM_LIMIT_S = 600          # an event stream ends after this; the client reconnects with Last-Event-ID
KEEPALIVE_S = 15              # an idle event stream sends a comment this often
JOB_ID = re.compile(r"[0-9a-f]{12}")
CONTENT_TYPES = {".glb": "model/gltf-binary", ".json": "application/json", ".png": "image/png"}
CHUNK = 1 << 20


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


def one_line(text, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit] or "error"


def error_reply(status: int, message: str, headers: Optional[dict] = None) -> Response:
    # The connection closes after an error: whatever the client still sends is not read.
    return _json({"error": one_line(message)}, status, {"Connection": "close", **(headers or {})})


def status_for(exc: BaseException) -> int:
    """The HTTP status of a worldgen error raised while answering a request."""
    for kind, status in ((UnknownJob, 404), (NameTaken, 409), (QueueFull, 429), (ServerStopping, 503)):
        if isinstance(exc, kind):
            return status
    return 400 if isinstance(exc, UserInputError) else 422


class Changes:
    """Wakes the event loop's waiters when the job board changes (called from worker threads)."""

    def __init__(self) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.event: Optional[asyncio.Event] = None

    def attach(self, board) -> None:
        if self.loop is None:  # first use, on the loop thread
            self.loop, self.event = asyncio.get_running_loop(), asyncio.Event()
            board.add_listener(lambda: self.loop.call_soon_threadsafe(self._pulse))

    def _pulse(self) -> None:
        self.event.set()
        self.event = asyncio.Event()

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self.event.wait(), remaining)
            except asyncio.TimeoutError:
                return done()
        return True


def create_app(get_service: Callable[[], WorldService], on_error: Optional[Callable[[str], None]] = None,
               body_timeout: float = 20.0) -> FastAPI:
    app = FastAPI(title="worldgen serve", version=__version__, openapi_url="/openapi.json", docs_url="/docs",
                  redoc_url=None, description="Worlds from text, made from a queue by a resident model. "
                                              "docs/server.md has the details.")
    changes = Changes()

    def service() -> WorldService:
        current = get_service()
        changes.attach(current.board)
        return current

    _error_handlers(app, on_error)
    _info_routes(app, service)
    _job_routes(app, service, changes, body_timeout)
    _stream_routes(app, service, changes)
    _openapi_with_request_model(app)
    return app


JOB_REPLY = {"description": "The job", "content": {"application/json": {"schema": JOB_SCHEMA}}}


def _info_routes(app: FastAPI, service: Callable[[], WorldService]) -> None:
    @app.get(API_PREFIX + "/health", summary="The server, its backend, workers and queue")
    async def health():
        return _json(service().health())

    @app.get(API_PREFIX + "/schema", summary="JSON Schema of a job request (generated from the request model)")
    async def schema():
        return _json(request_schema())

    @app.get(API_PREFIX + "/jobs", summary="Every job kept (id, state, name)")
    async def jobs():
        return _json({"jobs": service().jobs()})


def _job_routes(app: FastAPI, service: Callable[[], WorldService], changes: Changes, body_timeout: float) -> None:
    @app.post(API_PREFIX + "/jobs", status_code=202, summary="Submit a job (?dry_run=true: only check it)",
              responses={202: JOB_REPLY},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/WorldRequest"}}}}})
    async def submit(request: Request):
        dry_run = _query(request, ("dry_run",)).get("dry_run", "false")
        if dry_run not in ("true", "false"):
            raise HttpError(400, f"?dry_run= must be true or false, not {dry_run[:40]!r}")
        body = decode_json(await _body(request, body_timeout))
        if dry_run == "true":  # checked exactly as a job is, and not queued
            return _json({"request": service().check(body)})
        job = service().submit(body)
        return _json(job, 202, {"Location": f"{API_PREFIX}/jobs/{job['id']}"})

    @app.get(API_PREFIX + "/jobs/{job_id}", summary="A job; with ?since=R&wait=S, wait up to S s for a "
                                                    "revision above R", responses={200: JOB_REPLY})
    async def status(job_id: str, request: Request):
        query = _query(request, ("since", "wait"))
        since = _number(query, "since", int, 0, 2**62)
        wait = _number(query, "wait", float, 0.0, 3600.0) or 0.0
        current = service()
        job = current.job(_job_id(job_id))
        if since is not None and wait > 0:
            await changes.wait(lambda: job.revision > since or current.board.closed, min(wait, MAX_WAIT_S))
        return _json(current.describe(job))

    @app.delete(API_PREFIX + "/jobs/{job_id}", summary="Cancel a job (queued: at once; running: at its next step)")
    async def cancel(job_id: str):
        return _json(service().cancel(_job_id(job_id)))


def _stream_routes(app: FastAPI, service: Callable[[], WorldService], changes: Changes) -> None:
    @app.get(API_PREFIX + "/jobs/{job_id}/events", summary="The job as server-sent events, one per change",
             response_class=StreamingResponse)
    async def events(job_id: str, request: Request):
        query = _query(request, ("since",))
        since = _number(query, "since", int, 0, 2**62)
        last = request.headers.get("last-event-id", "")
        if since is None and last:
            since = int(last) if last.isdecimal() and len(last) < 19 else None
        current = service()
        job = current.job(_job_id(job_id))
        return StreamingResponse(_stream(current, changes, job, -1 if since is None else since),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get(API_PREFIX + "/jobs/{job_id}/files/{path:path}", summary="A file of a finished world")
    async def file(job_id: str, path: str):
        parts = service().file(_job_id(job_id), path)
        try:
            fd = open_file(service().root.path, parts)
        except (OSError, LinkRefused):
            raise HttpError(410, f"{path[:120]} is gone from the server's output root (a link put in its place is "
                                 f"never followed)") from None
        size = os.fstat(fd).st_size
        suffix = os.path.splitext(parts[-1])[1].lower()
        return StreamingResponse(_read(fd), media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
                                 headers={"Content-Length": str(size)})


async def _stream(current: WorldService, changes: Changes, job, since: int):
    """``event: job`` with the job's JSON (``id``: its revision) at every change, until it ends."""
    deadline = time.monotonic() + STREAM_LIMIT_S
    while True:
        if job.revision > since:
            payload = current.describe(job)
            since = payload["revision"]
            yield f"id: {since}\nevent: job\ndata: {json.dumps(payload, allow_nan=False)}\n\n"
            if payload["state"] in TERMINAL:
                return
        elif job.state in TERMINAL:  # a reconnect after the end: nothing newer will ever come
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            yield "event: reconnect\ndata: {}\n\n"  # the stream's time is up: reconnect with Last-Event-ID
            return
        if not await changes.wait(lambda: job.revision > since, min(remaining, KEEPALIVE_S)):
            yield ": waiting\n\n"


def _read(fd: int):
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _json(payload, status: int = 200, headers: Optional[dict] = None) -> Response:
    data = (json.dumps(payload, allow_nan=False) + "\n").encode("utf-8")
    return Response(data, status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store", **(headers or {})})


async def _body(request: Request, timeout: float) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HttpError(415, f"send the job as Content-Type: application/json, not {kind[:60] or 'nothing'}")
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "chunked bodies are not accepted; send Content-Length")
    raw = request.headers.get("content-length")
    if raw is None:
        raise HttpError(411, "send a Content-Length header with the JSON body")
    length = int(raw) if raw.isdecimal() and len(raw) < 19 else -1
    if length < 0:
        raise HttpError(400, f"Content-Length {raw[:40]!r} is not a byte count")
    try:
        async with asyncio.timeout(timeout):  # a body trickled in byte by byte ends here
            if length > MAX_BODY:
                if length <= MAX_DRAIN:
                    async for _ in request.stream():
                        pass
                raise HttpError(413, f"the body has {length} bytes; a job request must stay under {MAX_BODY}",
                                {"Connection": "close"})
            return await request.body()
    except TimeoutError:
        raise HttpError(408, f"the body did not arrive within {timeout:g} s; send it at once",
                        {"Connection": "close"}) from None


def _query(request: Request, known: tuple[str, ...]) -> dict:
    """The query's fields (the last of repeats); unknown or too many fields are a 400, never a 500."""
    items = request.query_params.multi_items()
    if len(items) > MAX_QUERY_FIELDS:
        raise HttpError(400, f"{len(items)} query fields; this path takes at most {', '.join(known)}")
    for key, _ in items:
        if key not in known:
            raise HttpError(400, f"unknown query field {key[:40]!r}; this path takes {', '.join(known)}")
    return dict(items)


def _number(query: dict, key: str, kind, low, high):
    text = query.get(key)
    if text is None or text == "":
        return None
    try:
        value = kind(text) if len(text) < 40 else None
    except ValueError:
        value = None
    if value is None or value != value or not low <= value <= high:
        raise HttpError(400, f"?{key}= must be a number between {low} and {high}, not {text[:40]!r}")
    return value


def _job_id(text: str) -> str:
    if not JOB_ID.fullmatch(text):
        raise HttpError(404, f"{text[:40]!r} is not a job id; ids come from POST /v1/jobs")
    return text


def _error_handlers(app: FastAPI, on_error: Optional[Callable[[str], None]]) -> None:
    @app.exception_handler(HttpError)
    async def http_error(request, exc: HttpError):
        return error_reply(exc.status, str(exc), exc.headers)

    @app.exception_handler(WorldgenError)
    async def worldgen_error(request, exc: WorldgenError):
        return error_reply(status_for(exc), message_for(exc))  # the line the CLI prints

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request, exc: StarletteHTTPException):
        path = request.url.path[:100]
        if exc.status_code == 404:
            return error_reply(404, f"no such path {path!r}; the API is under {API_PREFIX}/ (see /docs or "
                                    f"GET {API_PREFIX}/schema)")
        if exc.status_code == 405:
            allowed = _allowed(app, request.scope) or (exc.headers or {}).get("Allow", "")
            return error_reply(405, f"{request.method} is not allowed on {path}; use {allowed or 'another method'}",
                               {"Allow": allowed} if allowed else None)
        return error_reply(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the request"
        return error_reply(400, f"{where}: {first.get('msg', 'not valid')}")

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):  # our fault: one line, and the server goes on
        if on_error is not None:
            on_error(traceback.format_exc())
        known = known_fault(exc)  # a full disk or no memory: the fix the CLI gives too
        return error_reply(500, known or f"internal error ({type(exc).__name__}: {exc}); the server goes on, "
                                         f"please report this")


def _allowed(app: FastAPI, scope) -> str:
    """Every method some route takes on this path (Starlette names only the first route's)."""
    from starlette.routing import Match

    methods = set()
    for route in app.router.routes:
        if getattr(route, "methods", None) and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods - {"HEAD"}
    return ", ".join(sorted(methods))


def _openapi_with_request_model(app: FastAPI) -> None:
    """``/openapi.json`` with the request model's schema (the same as ``GET /v1/schema``) as the
    body of ``POST /v1/jobs``; the body is read by hand, so FastAPI would not list it itself."""
    default = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = default()
            request = request_schema()
            request.pop("$schema", None), request.pop("$id", None)
            spec.setdefault("components", {}).setdefault("schemas", {})["WorldRequest"] = request
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi
