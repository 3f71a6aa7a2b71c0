"""The server's own bounds: uvicorn's HTTP/1.1 protocol (httptools) with a deadline on a
request's head, a cap on its size, and a limit on the requests in flight.

uvicorn alone waits for ever for a request line and headers (its keep-alive timer runs only
between requests, and a byte received stops it), keeps no bound on their size with httptools,
and answers its concurrency limit with a plain-text 503. Here:

* **Head deadline.** From the connection's start, and from the first byte of each following
  request, the line and headers must be complete within ``header_timeout`` seconds; else the
  connection is closed (with a ``408`` problem+json if part of a request had arrived). A
  client that sends its headers a byte at a time is cut at the deadline.
* **Head size.** More than ``max_header_bytes`` of line and headers: ``431`` problem+json, and
  the connection is closed.
* **Requests in flight.** Past ``max_concurrency`` requests at once in this process a new one
  is answered ``503`` problem+json (``/problems/unavailable``) with ``Retry-After`` before it
  reaches the application (nothing was changed), and its connection closed.

The body has its own deadline in the request middleware (``api/http/middleware.py``). The
``sinergi serve`` command runs the service with this protocol, its bounds from the settings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.core.errors import PROBLEM_JSON, TYPE_BASE, ServiceUnavailable


@dataclass(frozen=True)
class Bounds:
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_concurrency: int = 256
    retry_after: int = 1


def _problem(status: int, slug: str, title: str, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A complete HTTP/1.1 reply carrying a problem document, closing the connection."""
    body = orjson.dumps({"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail})
    head = [f"HTTP/1.1 {status} {title}".encode(), b"content-type: " + PROBLEM_JSON.encode(),
            b"content-length: " + str(len(body)).encode(), b"connection: close",
            *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of the module docstring. The bounds are
    the class's (a subclass sets them); uvicorn's own ``limit_concurrency`` is not used."""

    bounds: ClassVar[Bounds] = Bounds()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # counted here, answered with a problem document
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and the end of its headers
        self._head_bytes = 0
        self._head_began = False  # the current head began in the chunk being parsed

    # The head's deadline and size.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._head_began = False
        super().data_received(data)
        if self._in_head and not self.transport.is_closing() and not self._head_began:
            # All of this chunk is head (the headers are still incomplete). The chunk a head
            # begins in may end the request before it, so it is not counted: the bound is
            # ``max_header_bytes`` and one read.
            self._head_bytes += len(data)
            if self._head_bytes > self.bounds.max_header_bytes:
                self._disarm()
                self._refuse(_problem(431, "headers-too-large", "Request header fields too large",
                                      f"A request's line and headers are limited to {self.bounds.max_header_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._head_began = True, 0, True
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if len(self.tasks) >= self.bounds.max_concurrency:
            app, self.app = self.app, self._overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.bounds.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's head is late while the one before it is answered: close
            # after that reply (no bytes of ours in the middle of it).
            self.cycle.keep_alive = False
            return
        if not self._in_head:  # nothing of a request yet: an idle connection, closed silently
            self.transport.close()
            return
        self._refuse(_problem(408, "request-timeout", "The request did not arrive in time",
                              f"A request's line and headers must arrive within {self.bounds.header_timeout:g} s"))

    def _refuse(self, reply: bytes) -> None:
        self._in_head = False
        self.transport.write(reply)
        self.transport.close()

    # Requests in flight.
    async def _overloaded(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = ServiceUnavailable("The server has as many requests in flight as it takes; nothing was "
                                     "changed, retry shortly")
        body = orjson.dumps(problem.body(scope.get("path")))
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.bounds.retry_after).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
