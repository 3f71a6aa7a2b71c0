"""Rendering of every error as RFC 9457 ``application/problem+json``.

Services raise :class:`api.core.errors.Problem` subclasses; this module turns them, FastAPI's
validation errors, Starlette's HTTP errors and database outages into problem replies.
Unexpected exceptions become a bare 500 problem: the stack trace goes to the log (with the
request id), never to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.core.db import failure_kind
from api.core.errors import (
    PROBLEM_JSON,
    TYPE_BASE,
    Busy,
    DatabaseTimeout,
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
    408: ("request-timeout", "The request did not arrive in time"),
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
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    async def _database_unavailable(request: Request, exc: Exception) -> Response:
        # A database error outside a request's unit of work (the session dependency turns its
        # own into the same problems, and records them with the status answered).
        p = database_problem(exc) or ServiceUnavailable()
        log.warning("database %s: %s", p.slug, type(getattr(exc, "orig", None) or exc).__name__,
                    extra={"path": request.url.path})
        return problem_response(p.body(request.url.path), p.headers)

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


def database_problem(exc: BaseException) -> Problem | None:
    """The problem a database error is answered with (``None``: not one of them): busy (SQLite's
    write lock or every pooled connection held past its bound), no answer within a bound, or not
    reachable. The transaction did not commit, so nothing was written and the caller can safely
    retry (a COMMIT whose answer was lost is :class:`api.core.errors.OutcomeUnknown` instead)."""
    kind = failure_kind(exc)
    if kind is None:
        return None
    if kind == "busy":
        return Busy("The database is busy; nothing was changed, retry shortly", headers={"Retry-After": "1"})
    if kind == "timeout":
        return DatabaseTimeout("The database did not answer in time; nothing was changed, retry shortly",
                               headers={"Retry-After": "5"})
    return ServiceUnavailable("The database is not reachable right now; nothing was changed, retry shortly",
                              headers={"Retry-After": "5"})
