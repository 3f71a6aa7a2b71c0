"""RFC 9457 problem details: one error base class, one renderer.

Every error reply of the API is ``application/problem+json`` with a stable ``type`` per kind
of error. Services raise a :class:`Problem` subclass; nothing else needs to know about HTTP.
Unexpected exceptions become a bare 500 problem: the stack trace goes to the log (with the
request id), never to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from sqlalchemy import exc as sa_exc
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("sinergi.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/problems/"


class Problem(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class ValidationFailed(Problem):
    status, slug, title = 422, "validation-error", "The request is not valid"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str = "A valid bearer token is required") -> None:
        super().__init__(
            detail,
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{detail}"'},
        )


class Forbidden(Problem):
    status, slug, title = 403, "insufficient-scope", "Insufficient scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This call needs the scope '{scope}'",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            required_scope=scope,
        )


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "The resource has changed"


class PreconditionRequired(Problem):
    status, slug, title = 428, "precondition-required", "If-Match is required"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "unavailable", "Service unavailable"


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "The request is not valid"),
    429: ("too-many-requests", "Too many requests"),
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=body["status"], media_type=PROBLEM_JSON, headers=headers
    )


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "items", 3, "nik")`` -> ``items.3.nik`` (the request part is dropped)."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where = parts.pop(0)
        if not parts:
            return str(where)
        if where != "body":
            parts.insert(0, where)
    return ".".join(str(p) for p in parts)


def validation_errors(errors: list[Any]) -> list[dict[str, str]]:
    out = []
    for e in errors:
        msg = str(e.get("msg", "invalid"))
        out.append({"field": field_path(e.get("loc", ())), "message": msg.removeprefix("Value error, ")})
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.body(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        p = ValidationFailed("See 'errors' for the fields at fault", errors=validation_errors(exc.errors()))
        return problem_response(p.body(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("error", "Error"))
        body = {
            "type": TYPE_BASE + slug,
            "title": title,
            "status": exc.status_code,
            "detail": exc.detail if isinstance(exc.detail, str) else title,
            "instance": request.url.path,
        }
        return problem_response(body, dict(exc.headers or {}))

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database_unavailable(request: Request, exc: Exception) -> Response:
        # The database is down or out of connections: nothing was written (the transaction did
        # not commit), so the caller can safely retry.
        log.warning("database unavailable: %s", type(exc).__name__, extra={"path": request.url.path})
        p = ServiceUnavailable("The database is not reachable right now; nothing was changed, retry shortly")
        return problem_response(p.body(request.url.path), {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        body = Problem("An unexpected error occurred; quote the X-Request-ID when reporting it").body(
            request.url.path
        )
        return problem_response(body)
