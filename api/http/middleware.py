"""The outermost layer of every request: request ids, the client's address, body limit and
deadline, access log, metrics, the last-resort 500 (a problem document with the request id, never a stack trace),
and the last-resort audit entry.

* **Request ids.** The server makes its own for every request (``X-Request-ID`` of the reply, the
  ``request_id`` of its audit entries and log lines). An ``X-Request-ID`` the caller sent is its
  correlation id: kept beside the server's (``caller_request_id`` in the audit entry's detail and
  the access log) and echoed as ``X-Caller-Request-ID``, when it is 1–128 characters of
  ``A–Z a–z 0–9 . _ : @ / + = -``; anything else is not used (not echoed, not recorded).
* **Client address.** The socket's peer, unless that peer is one of the ``trusted_proxies`` of
  the settings: then ``X-Forwarded-For`` is read from the right, hop by hop, as long as each hop
  is a trusted proxy, and the first address a trusted proxy vouches for is the client. A hop that
  is not an IP address ends the walk (the last vouched-for address stands), so the recorded
  address is always an IP address (or, without a socket, nothing).
* **Body deadline.** The whole body must arrive within ``body_timeout`` seconds of waiting for it
  (the time the server spends before it reads the body does not count); a body still incomplete
  then is answered ``408`` problem+json (``request-timeout``) and
  the connection closed, so a client sending a byte at a time holds no memory for long. (The
  request line and headers have their own bound in the server's protocol, ``api/http/server.py``.)
* **Last-resort audit.** A 4xx reply to a route of the service that no unit of work recorded (the
  body was too large, or not JSON, before any dependency ran) is recorded here, before the reply
  starts, through the same failure path as any other failed request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core import text as text_rules
from api.core.context import RequestContext
from api.core.errors import PROBLEM_JSON, TYPE_BASE, PayloadTooLarge, Problem, RequestTimeout
from api.http import session as request_session

log = logging.getLogger("sinergi.access")

REQUESTS = Counter("sinergi_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "sinergi_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
CALLER_REQUEST_ID_HEADER = b"x-caller-request-id"
_MAX_FORWARDED = 2048  # characters of X-Forwarded-For read (from its right end)
_MAX_HOPS = 16

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def caller_request_id(given: str | None) -> str | None:
    """The caller's ``X-Request-ID`` when it is one we keep, else ``None``."""
    return given if given and _CALLER_REQUEST_ID.fullmatch(given) else None


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Iterable[Network]) -> bool:
    return any(addr.version == n.version and addr in n for n in networks)


def client_address(peer: str | None, forwarded: str | None, trusted: tuple[Network, ...]) -> str | None:
    """The client's address (see the module's docstring): ``peer`` is the socket's,
    ``forwarded`` the ``X-Forwarded-For`` header (all of its lines joined)."""
    if peer is None:
        return None
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:  # not a socket address (an in-process transport): kept only if it is tidy
        return peer if text_rules.is_identifier(peer, text_rules.MAX_ID) else None
    if not forwarded or not trusted or not _trusted(addr, trusted):
        return str(addr)
    hops = forwarded[-_MAX_FORWARDED:].split(",")
    if len(forwarded) > _MAX_FORWARDED:
        hops = hops[1:]  # cut in the middle of an address: not one
    for hop in reversed(hops[-_MAX_HOPS:]):
        try:
            addr = ipaddress.ip_address(hop.strip())
        except ValueError:
            break
        if not _trusted(addr, trusted):
            break
    return str(addr)


class _Answered(Problem):
    """A reply already made (by FastAPI's handlers) that the last-resort audit records."""

    def __init__(self, status: int, slug: str | None) -> None:
        super().__init__(slug or str(status))
        self.status, self.slug = status, slug or ""


def _route_of(scope: Scope) -> tuple[Any, dict[str, Any]] | None:
    """The route the request was routed to (``None``: no route of the service)."""
    route = scope.get("route")
    return None if route is None else (route, dict(scope.get("path_params") or {}))


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body grows (or is declared) past the limit. It is an
    HTTPException because FastAPI lets only those out of its body parsing (anything else
    becomes a 400 "error parsing the body"); the problem handler renders it as the 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class _BodyTooSlow(HTTPException):
    """Raised from ``receive`` when the body is not complete by its deadline (an HTTPException
    for the same reason as :class:`_BodyTooLarge`); the reply closes the connection."""

    def __init__(self, detail: str) -> None:
        super().__init__(408, detail, headers={"Connection": "close"})


class RequestMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, trusted_proxies: Iterable[str] = (),
                 body_timeout: float = 30.0) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout
        self.trusted = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        forwarded: list[str] = []
        for k, v in scope["headers"]:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = value
            if name == "x-forwarded-for":
                forwarded.append(value)
        request_id = uuid.uuid4().hex
        theirs = caller_request_id(headers.get("x-request-id"))
        client = scope.get("client")
        peer = client[0] if client else None
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["caller_request_id"] = theirs
        state["client_ip"] = client_address(peer, ",".join(forwarded), self.trusted)
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500, "sent": False, "failure": None, "held": None}

        private = scope.get("path", "").startswith(("/v1/", "/oauth/"))

        async def send_on(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["sent"] = True
                raw = [(k, v) for k, v in message.get("headers", [])
                       if k.lower() not in (b"x-request-id", CALLER_REQUEST_ID_HEADER)]
                raw.append((b"x-request-id", request_id.encode("latin-1")))
                if theirs is not None:
                    raw.append((CALLER_REQUEST_ID_HEADER, theirs.encode("latin-1")))
                if private and not any(k.lower() == b"cache-control" for k, _ in raw):
                    # personal data, secrets shown once, an agency's own records: no cache keeps them
                    raw.append((b"cache-control", b"no-store"))
                message["headers"] = raw
            await send(message)

        async def send_wrapper(message: Message) -> None:
            # A 4xx that no unit recorded: hold its start until the first body part (the
            # problem's type is there), record it, then reply.
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500 and not _audited(scope):
                status_holder["held"] = message
                status_holder["status"], status_holder["sent"] = message["status"], True
                return
            held = status_holder["held"]
            if held is not None and message["type"] == "http.response.body":
                status_holder["held"] = None
                await self._audit(scope, held, message.get("body", b""), status_holder["failure"])
                await send_on(held)
            await send_on(message)

        # A declared length over the limit is refused at the first read, before a byte of the
        # body is taken: the request is routed first, so its refusal is audited with its route.
        declared = headers.get("content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body
        received = 0
        loop = asyncio.get_running_loop()
        waited = 0.0  # seconds spent waiting for the body (not the server's own time before reading it)
        body_done = False

        async def receive_wrapper() -> Message:
            nonlocal received, body_done, waited
            if too_large:
                raise _BodyTooLarge(self._too_large())
            if body_done:  # later reads wait for the client's disconnect: no deadline on those
                return await receive()
            began = loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(self.body_timeout - waited, 0.001))
            except TimeoutError:
                raise _BodyTooSlow(self._too_slow()) from None
            waited += loop.time() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self._too_large())
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not status_holder["sent"]:
                status_holder["failure"] = PayloadTooLarge(self._too_large())
                await self._problem(send_wrapper, scope, status_holder["failure"].body(scope["path"]))
        except _BodyTooSlow:
            if not status_holder["sent"]:
                status_holder["failure"] = RequestTimeout(self._too_slow())
                await self._problem(send_wrapper, scope, status_holder["failure"].body(scope["path"]),
                                    [(b"connection", b"close")])
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": _shown(scope["path"])})
            if not status_holder["sent"]:
                body = {
                    "type": TYPE_BASE + "internal-error",
                    "title": "Internal server error",
                    "status": 500,
                    "detail": "An unexpected error occurred; quote the X-Request-ID when reporting it",
                    "instance": _shown(scope["path"]),
                }
                await self._problem(send_wrapper, scope, body)
        self._observe(scope, status_holder["status"], started, request_id, theirs)

    @staticmethod
    async def _audit(scope: Scope, start: Message, body: bytes, failure: Problem | None) -> None:
        found = _route_of(scope)
        svc = getattr(getattr(scope.get("app"), "state", None), "services", None)
        if found is None or svc is None:  # no route of the service: the request is about nothing
            return
        route, path_params = found
        state = scope["state"]
        ctx = state.get("ctx")
        if ctx is None:
            ctx = RequestContext(request_id=state.get("request_id"), ip=state.get("client_ip"),
                                 route=getattr(route, "name", None), path_params=path_params,
                                 caller_request_id=state.get("caller_request_id"))
            state["ctx"] = ctx
        exc: BaseException = failure if failure is not None else _Answered(start["status"], _problem_type(start, body))
        await request_session.record_failure(svc, ctx, exc)

    def _too_large(self) -> str:
        return f"Request bodies are limited to {self.max_body} bytes"

    def _too_slow(self) -> str:
        return f"The request body did not arrive within {self.body_timeout:g} s; nothing was changed"

    @staticmethod
    async def _problem(send: Send, scope: Scope, body: dict[str, Any],
                       extra: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": body["status"],
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _observe(scope: Scope, status: int, started: float, request_id: str, theirs: str | None) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        REQUESTS.labels(scope["method"], route_path, str(status)).inc()
        LATENCY.labels(scope["method"], route_path).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "caller_request_id": theirs,
                "client": scope["state"].get("client_ip"),
                "method": scope["method"],
                "path": _shown(scope["path"]),
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def _shown(path: str) -> str:
    """A path as a log line or a problem shows it: bounded, control characters escaped."""
    return text_rules.bounded(path, 256)


def _audited(scope: Scope) -> bool:
    ctx = scope.get("state", {}).get("ctx")
    return ctx is not None and ctx.audited


def _problem_type(start: Message, body: bytes) -> str | None:
    """The slug of a problem reply (``/problems/validation-error`` -> ``validation-error``)."""
    ctype = next((v for k, v in start.get("headers", []) if k.lower() == b"content-type"), b"")
    if not ctype.startswith(PROBLEM_JSON.encode()) or len(body) > 65536:
        return None
    try:
        kind = orjson.loads(body).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return kind.removeprefix(TYPE_BASE) if isinstance(kind, str) else None
