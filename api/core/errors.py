"""RFC 9457 problem details: one error base class, one renderer.

Every error reply of the API is ``application/problem+json`` with a stable ``type`` per kind
of error. Services raise a :class:`Problem` subclass; nothing else needs to know about HTTP.
The HTTP layer's problem renderer turns them (and every other error) into replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class RequestTimeout(Problem):
    """The request's body did not arrive within the server's bound (``body_timeout``)."""

    status, slug, title = 408, "request-timeout", "The request did not arrive in time"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "unavailable", "Service unavailable"


class Busy(ServiceUnavailable):
    """The database is up but another transaction held the lock we needed past the wait bound
    (SQLite's busy timeout): contention, not an outage."""

    slug, title = "busy", "The database is busy"


class OutcomeUnknown(ServiceUnavailable):
    """The connection to the database was lost while the request's transaction was being
    committed (``COMMIT`` was sent, its answer never came): the change may have been made or
    not, and the service cannot tell. Unlike every other 503 this one does not say "nothing was
    changed": a client retries only under the same ``Idempotency-Key`` (which replays the
    committed reply, or does the work once), or after reading the resource."""

    slug, title = "outcome-unknown", "The outcome is unknown"
    DETAIL = ("The connection to the database was lost while the change was being committed: it may have "
              "been made or not. Retry only with the same Idempotency-Key, or read the resource first")

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.DETAIL, headers={"Retry-After": "5"})


class DatabaseTimeout(ServiceUnavailable):
    """The database did not answer within a bound (connecting, a statement, a reply): it may
    be overloaded or out of reach. Retry shortly."""

    slug, title = "database-timeout", "The database did not answer in time"


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


def validation_errors(errors: Sequence[Any], body: Any = None, *, whole: str = "") -> list[dict[str, str]]:
    """Pydantic / FastAPI errors as ``[{field, message}]``: the one converter (request bodies
    and parameters, and each record of a batch, validated on its own). A body that is not JSON
    at all is the field ``body``, its message saying where the syntax broke (line and column of
    ``body``, the document as received), not the character offset FastAPI puts in its place.
    ``whole``: the field named by an error about the whole value (a batch's ``record``)."""
    out = []
    for e in errors:
        if e.get("type") == "json_invalid":
            out.append({"field": "body", "message": json_syntax_message(e, body)})
            continue
        msg = str(e.get("msg", "invalid"))
        out.append({"field": field_path(e.get("loc", ())) or whole, "message": msg.removeprefix("Value error, ")})
    return out


def record_errors(exc: Any) -> list[dict[str, str]]:
    """A batch record's :class:`pydantic.ValidationError` as ``[{field, message}]``
    (:func:`validation_errors`; an error about the record as a whole is the field ``record``)."""
    return validation_errors(exc.errors(include_url=False, include_context=False, include_input=False),
                             whole="record")


def json_syntax_message(error: Any, body: Any) -> str:
    loc = list(error.get("loc", ()))
    reason = str((error.get("ctx") or {}).get("error") or "invalid JSON")
    pos = loc[-1] if loc and isinstance(loc[-1], int) else None
    if pos is None:
        return f"The body is not valid JSON: {reason}"
    doc = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    if isinstance(doc, str) and 0 <= pos <= len(doc):
        line = doc.count("\n", 0, pos) + 1
        column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
        return f"The body is not valid JSON: {reason} at line {line}, column {column}"
    return f"The body is not valid JSON: {reason} at character {pos}"
