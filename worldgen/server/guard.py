"""What stands between the network and the routes of `worldgen serve`.

``Guard`` (ASGI middleware, outermost) refuses, before any route runs:
- on a loopback server, a ``Host`` that is not a loopback name (DNS rebinding) and an ``Origin``
  that is not a loopback page (a web page in a browser);
- elsewhere, an ``Origin`` other than the server's own host;
- without the server's token (``Authorization: Bearer TOKEN``), every request, when it has one (a
  server on a non-loopback address always has one);
and bounds every request's time: a request that has not been answered within its limit gets a 408
(or its stream is closed), so a slow client holds nothing for long.

``DeadlineH11Protocol`` adds what uvicorn's h11 protocol lacks: a deadline for a request's headers,
so a client that opens a connection and sends its headers a byte at a time (or nothing) is cut off
after ``header_timeout`` instead of holding a connection for as long as it likes; and it answers
a request it cannot parse in the same one-line JSON as every other error.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from typing import Optional
from urllib.parse import urlsplit

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name in a Host header: "127.0.0.1:8765" -> 127.0.0.1, "[::1]:8765" -> ::1."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    def __init__(self, app, *, loopback_only: bool, token: Optional[str], limits: dict) -> None:
        self.app, self.loopback_only, self.token = app, loopback_only, token
        self.limits = limits  # {"request": s, "stream": s, "file": s}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self._refusal(headers)
        if refusal is not None:
            return await _reply(send, *refusal)
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        limit = self._limit(scope["path"])
        try:
            async with asyncio.timeout(limit):
                await self.app(scope, receive, tracked_send)
        except TimeoutError:
            if not started:
                await _reply(send, 408, f"the request took longer than its limit of {limit:g} s; retry",
                             {"connection": "close"})
        except Exception:  # already answered with a 500 by the app's handler: never a traceback on stderr
            if not started:
                await _reply(send, 500, "internal error; the server goes on, please report this")

    def _limit(self, path: str) -> float:
        if path.endswith("/events"):
            return self.limits["stream"]
        return self.limits["file"] if "/files/" in path else self.limits["request"]

    def _refusal(self, headers: dict) -> Optional[tuple]:
        host = headers.get("host")
        if self.loopback_only and host is not None and not is_loopback(host_name(host)):
            return 403, f"Host {host[:100]!r} is not this loopback server; connect to 127.0.0.1"
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin, host):
            return 403, (f"requests from web pages ({origin[:100]}) are refused; use worldgen's client, curl or "
                         f"a script")
        if self.token is not None:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return 401, ("this server needs its token: send Authorization: Bearer TOKEN (`worldgen pano "
                             "--server` reads WORLDGEN_SERVE_TOKEN)"), {"www-authenticate": "Bearer"}
        return None

    def _origin_ok(self, origin: str, host: Optional[str]) -> bool:
        name = urlsplit(origin).hostname if "://" in origin else None
        if name is None:  # "null" (a file or sandboxed page) or junk
            return False
        if self.loopback_only:
            return is_loopback(name)
        return host is not None and name.lower() == host_name(host).strip("[]").lower()


async def _reply(send, status: int, message: str, headers: Optional[dict] = None) -> None:
    body = (json.dumps({"error": " ".join(message.split())}) + "\n").encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def deadline_protocol(header_timeout: float) -> type:
    """uvicorn's h11 protocol with a deadline for each request's headers (see the module docstring)."""

    class DeadlineH11Protocol(H11Protocol):
        _deadline: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's headers arrived: the route's own limit takes over
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection has the same deadline

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            # A request uvicorn cannot parse (bad request line, bad length): answered as JSON too.
            body = json.dumps({"error": "the request is not valid HTTP/1.1; send a request line, headers and a "
                                        "Content-Length"}).encode() + b"\n"
            event = h11.Response(status_code=400, reason=b"Bad Request", headers=[
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")])
            try:
                for part in (event, h11.Data(data=body), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(part))
            except h11.LocalProtocolError:  # too early or too late for a reply: just close
                pass
            self.transport.close()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            if not self.transport.is_closing():
                self.transport.close()

    return DeadlineH11Protocol
