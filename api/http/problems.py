"""Rendering of every error as RFC 9457 ``application/problem+json``.

Services raise :class:`api.core.errors.Problem` subclasses; this module turns them, FastAPI's
validation errors, Starlette's HTTP errors and database outages into problem replies.
Unexpected exceptions become a bare 500 problem: the stack trace goes to the log (with the
request id), never to the caller.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.core.errors import (
    PROBLEM_JSON,
    TYPE_BASE,
    Busy,
    Problem,
    ServiceUnavailable,
    ValidationFailed,
    validation_errors,
)

log = logging.getLogger("sinergi.errors")


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


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.body(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        p = ValidationFailed("See 'errors' for the fields at fault", errors=validation_errors(list(exc.errors()), exc.body))
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
        if _lock_contention(exc):  # SQLite: up, but the write lock was held past the busy timeout
            log.warning("database busy", extra={"path": request.url.path})
            b = Busy("The database is busy; nothing was changed, retry shortly")
            return problem_response(b.body(request.url.path), {"Retry-After": "1"})
        log.warning("database unavailable: %s", type(exc).__name__, extra={"path": request.url.path})
        p = ServiceUnavailable("The database is not reachable right now; nothing was changed, retry shortly")
        return problem_response(p.body(request.url.path), {"Retry-After": "5"})

    @app.exception_handler(sa_exc.DataError)
    async def _unstorable(request: Request, exc: Exception) -> Response:
        # A value the database cannot hold (too long for its column, out of its type's range)
        # that no validation caught: the caller's input, so a 4xx; nothing was written. The
        # message names no value (api.core.db redacts them).
        log.warning("database refused a value: %s", exc, extra={"path": request.url.path[:256]})
        p = ValidationFailed("The request holds a value that cannot be stored")
        return problem_response(p.body(request.url.path))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        body = Problem("An unexpected error occurred; quote the X-Request-ID when reporting it").body(
            request.url.path
        )
        return problem_response(body)


def _lock_contention(exc: Exception) -> bool:
    """SQLite's ``database is locked`` (``SQLITE_BUSY``, or its snapshot variant): another
    connection held the lock past the busy timeout."""
    orig = getattr(exc, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and (
        getattr(orig, "sqlite_errorcode", None) in _SQLITE_BUSY or "database is locked" in str(orig)
    )


_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, 517}  # 517: SQLITE_BUSY_SNAPSHOT
