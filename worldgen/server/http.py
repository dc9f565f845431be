"""The HTTP front of `worldgen serve`: the FastAPI app (``app``) behind ``Guard``, run by uvicorn.

The socket is bound first (``make_server``: a busy port is a one-line error before any model is
loaded), the service attached once loaded, and uvicorn then serves on that socket in a thread of
its own; ``shutdown`` stops it. Only loopback addresses are served without a token; a server on
any other address refuses to start unless it has one, and then checks it on every request.

Routes (docs/server.md has the details; ``/docs`` and ``/openapi.json`` describe them too)::

    GET    /v1/health                    the server, its backend, workers and queue
    GET    /v1/schema                    JSON Schema of a job request (and, in $defs, of a job)
    GET    /v1/jobs                      every job kept (id, state, name)
    POST   /v1/jobs                      submit a job -> 202 and the job
    GET    /v1/jobs/ID[?since=R&wait=S]  the job; with since, wait up to S s for a revision > R
    GET    /v1/jobs/ID/events            the job as server-sent events, one per change
    DELETE /v1/jobs/ID                   cancel it (queued: at once; running: at its next step)
    GET    /v1/jobs/ID/files/PATH        a file of a finished world (PATH as listed in its files)
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable, Optional

from ..errors import UserInputError
from .app import STREAM_LIMIT_S, create_app
from .guard import Guard, deadline_protocol, is_loopback
from .service import MAX_WAIT_S, WorldService

MAX_CONNECTIONS = 256      # beyond this uvicorn answers 503 at once; slow clients are cut off long before
CLIENT_TIMEOUT_S = 20.0    # headers, and a request's body, must arrive within this
FILE_LIMIT_S = 600.0       # the longest a file download may take
TOKEN_ENV = "WORLDGEN_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16

__all__ = ["HttpServer", "check_bind", "is_loopback", "make_server"]


def check_bind(host: str, token: Optional[str]) -> bool:
    """Whether ``host`` is loopback. Any other address needs a token (refused otherwise), and a
    token must be long enough not to be guessed."""
    loopback = is_loopback(host)
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise UserInputError(f"the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS}, e.g. "
                             f"`python -c 'import secrets; print(secrets.token_urlsafe())'`")
    if not loopback and token is None:
        raise UserInputError(f"host {host!r} is not a loopback address: a server beyond this machine needs a token; "
                             f"set {TOKEN_ENV} (clients send it as Authorization: Bearer TOKEN), or bind 127.0.0.1")
    return loopback


class HttpServer:
    """A bound socket, and uvicorn serving the app on it once ``start`` is called."""

    def __init__(self, sock: socket.socket, *, loopback_only: bool, token: Optional[str],
                 client_timeout: float, on_error: Optional[Callable[[str], None]]) -> None:
        self.sock = sock
        self.service: Optional[WorldService] = None
        app = create_app(lambda: self.service, on_error=on_error, body_timeout=client_timeout)
        limits = {"request": client_timeout + MAX_WAIT_S, "stream": STREAM_LIMIT_S + client_timeout,
                  "file": FILE_LIMIT_S}
        self.app = Guard(app, loopback_only=loopback_only, token=token, limits=limits)
        self.client_timeout = client_timeout
        self._server = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def start(self) -> None:
        import uvicorn

        _quiet_logs()
        config = uvicorn.Config(self.app, http=deadline_protocol(self.client_timeout), lifespan="off",
                                limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5, access_log=False,
                                log_config=None, server_header=False, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="worldgen-http", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout)

    def server_close(self) -> None:
        self.sock.close()


def _quiet_logs() -> None:
    """uvicorn logs through ``logging``; library code never prints, so its records go nowhere
    (faults of ours reach the CLI through ``on_error``)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def make_server(service: Optional[WorldService], host: str = "127.0.0.1", port: int = 0, *,
                token: Optional[str] = None, client_timeout: float = CLIENT_TIMEOUT_S,
                on_error: Optional[Callable[[str], None]] = None) -> HttpServer:
    """Bind (port 0: any free port; see ``.url``). A non-loopback host needs ``token``.
    ``service`` may be set later (bind first, load models, then ``start``)."""
    loopback = check_bind(host, token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UserInputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
                             f"(0 takes any free one)") from None
    server = HttpServer(sock, loopback_only=loopback, token=token, client_timeout=client_timeout,
                        on_error=on_error)
    server.service = service
    return server
