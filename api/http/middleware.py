"""The outermost layer of every request: request id, body limit, access log, metrics, and the
last-resort 500 (a problem document with the request id, never a stack trace)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.errors import PROBLEM_JSON, TYPE_BASE, PayloadTooLarge

log = logging.getLogger("sinergi.access")

REQUESTS = Counter("sinergi_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "sinergi_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body without Content-Length grows past the limit. It is
    an HTTPException because FastAPI lets only those out of its body parsing (anything else
    becomes a 400 "error parsing the body"); the problem handler renders it as the 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class RequestMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID_OK.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500, "sent": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["sent"] = True
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                raw.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = raw
            await send(message)

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._problem(send_wrapper, scope, PayloadTooLarge(self._too_large()).body(scope["path"]))
            self._observe(scope, status_holder["status"], started, request_id)
            return

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self._too_large())
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not status_holder["sent"]:
                await self._problem(send_wrapper, scope, PayloadTooLarge(self._too_large()).body(scope["path"]))
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": scope["path"]})
            if not status_holder["sent"]:
                body = {
                    "type": TYPE_BASE + "internal-error",
                    "title": "Internal server error",
                    "status": 500,
                    "detail": "An unexpected error occurred; quote the X-Request-ID when reporting it",
                    "instance": scope["path"],
                }
                await self._problem(send_wrapper, scope, body)
        self._observe(scope, status_holder["status"], started, request_id)

    def _too_large(self) -> str:
        return f"Request bodies are limited to {self.max_body} bytes"

    @staticmethod
    async def _problem(send: Send, scope: Scope, body: dict[str, Any]) -> None:
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": body["status"],
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _observe(scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        route_path = getattr(route, "path", None) or "unmatched"
        REQUESTS.labels(scope["method"], route_path, str(status)).inc()
        LATENCY.labels(scope["method"], route_path).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
