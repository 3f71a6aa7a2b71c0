"""The OpenAPI document, made to tell the truth about the replies.

FastAPI documents the success reply of each route and its own validation error shape. This
module rewrites the generated document so that it describes what the server really sends:

* every error status an operation can return, derived from the operation itself (security:
  401 and 403; a path parameter: 404; any parameter or body: 400 and 422; a body: 413 and
  415; ``If-Match``: 412 and 428; ``Idempotency-Key``: 409 and 422; every operation: 429 and
  503), plus what a route declares in ``responses=``; each with an RFC 9457 problem schema
  (``application/problem+json``), 422 with its ``errors[{field, message}]``; FastAPI's own
  ``HTTPValidationError`` is gone;
* ``If-Match`` required where the server requires it (428 without), ``Idempotency-Key``
  declared with its bounds;
* the reply headers: ``X-Request-ID`` on every reply, ``Retry-After`` on 429 and 503,
  ``ETag`` where the route sets it (``openapi_extra=ETAG``), ``Idempotent-Replayed`` and
  ``Location`` on the replies of idempotent creations;
* a route that accepts any one of several scopes (``require_scope(a, b)``) as alternatives
  (one security requirement object each), not as one requirement holding both;
* an example for every parameter (:data:`PARAMETER_EXAMPLES`, by name) and every body (the
  body model's ``examples``), so each operation shows a whole request.

The tests (tests/reply_shapes.py) check every reply the suite receives against the statuses
declared here, so the document cannot drift from the server.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from api.core.errors import PROBLEM_JSON

# Marks a route whose success reply carries an ETag (``openapi_extra=ETAG``).
ETAG: dict[str, Any] = {"x-sinergi-etag": True}
# Marks a route whose errors follow RFC 6749 §5.2 (the token endpoints), not RFC 9457.
OAUTH_ERRORS: dict[str, Any] = {"x-sinergi-oauth-errors": True}


def enums(**closed: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``openapi_extra=enums(group_by=DIMENSIONS)``: the closed set of a parameter the route
    checks itself (a comma list, a region code), declared as the enumeration it is."""
    return {"x-sinergi-enums": {name: [str(v) for v in values] for name, values in closed.items()}}


def _apply_enum(schema: dict[str, Any], values: list[str]) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch.setdefault("items", {})["enum"] = values
        elif branch.get("type") == "string":
            branch["enum"] = values

_REF = "#/components/schemas/"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. `type` is stable per kind of error (`/problems/<slug>`); "
    "some problems add members of their own (`required_scope`, `referral_returnee`, ...).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "the kind of error", "examples": ["/problems/not-found"]},
        "title": {"type": "string", "description": "the kind of error, in words"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status"},
        "detail": {"type": "string", "description": "this occurrence, in words"},
        "instance": {"type": "string", "description": "the path of the request"},
        "errors": {"type": "array", "items": {"$ref": _REF + "FieldError"},
                   "description": "the fields at fault, when there are some"},
    },
    "additionalProperties": True,
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "A 422 problem: `errors` names each field at fault (`field` is the path in the body, "
    "`query.<name>`, `path.<name>`, `header.<name>`, or `body` for the body as a whole).",
    "allOf": [{"$ref": _REF + "Problem"}],
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {"errors": {"type": "array", "items": {"$ref": _REF + "FieldError"}}},
}
FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "title": "FieldError",
    "type": "object",
    "required": ["field", "message"],
    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OAuthError",
    "description": "RFC 6749 §5.2 error reply",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "enum": ["invalid_request", "invalid_client", "invalid_grant",
                                             "unauthorized_client", "unsupported_grant_type", "invalid_scope"]},
        "error_description": {"type": "string"},
    },
}

_DESCRIPTIONS = {
    400: "Bad request: a malformed parameter, cursor, header or body, or text that is not allowed",
    401: "No valid bearer token (`WWW-Authenticate` says why)",
    403: "The token lacks the scope (`required_scope`), or the write lies outside the caller's jurisdiction",
    404: "Not found, or not visible to the caller (the same reply)",
    409: "Conflict: the state does not allow it, or the same `Idempotency-Key` is still being processed",
    412: "`If-Match` does not match the current `ETag`",
    413: "The body is larger than the service accepts",
    415: "The body is not in a media type the operation accepts",
    422: "The request is not valid: see `errors` (also: an `Idempotency-Key` reused with another request)",
    428: "`If-Match` is required",
    429: "Too many requests: retry after `Retry-After` seconds",
    503: "The database is busy or unreachable; nothing was changed, retry after `Retry-After` seconds",
}

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "the caller's request id if it sent one, else a new one; quote it when "
                     "reporting a problem", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}},
    "ETag": {"description": "strong entity tag of the resource's current version; send it as `If-Match` "
             "to change the resource", "schema": {"type": "string", "examples": ['"3"']}},
    "Idempotent-Replayed": {"description": "`true` when this is the stored reply of an earlier request with the "
                            "same `Idempotency-Key`", "schema": {"type": "string", "enum": ["true"]}},
    "Location": {"description": "the created resource", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "the bearer challenge: `invalid_token`, or `insufficient_scope` with the "
                         "scope needed", "schema": {"type": "string"}},
}

IDEMPOTENCY_KEY = "Idempotency-Key"
IF_MATCH = "If-Match"

# An example value for each parameter, by name (a whole request for every operation).
PARAMETER_EXAMPLES: dict[str, Any] = {
    "limit": 50,
    "cursor": "eyJrIjpbIjIwMjUtMDctMDFUMDA6MDA6MDBaIl19.c2lnbmF0dXJl",
    "after": "eyJrIjpbMTIzXX0.c2lnbmF0dXJl",
    "id": "0b5c9f3e-7a41-4f0e-9d1c-2a6f8e4b7c10",
    "returnee_id": "0b5c9f3e-7a41-4f0e-9d1c-2a6f8e4b7c10",
    "person_id": "5d2e8a1b-3c4f-4a6b-8e9d-0f1a2b3c4d5e",
    "delivery_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    "alert_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    "parent": "61.07",
    "level": "subdistrict",
    "q": "jagoi",
    "view": "arrived_not_located",
    "region": "61.07.07",
    "repeat_return": True,
    "code": "DP3A-BENGKAYANG",
    "client_id": "c_3f9a1b2c4d5e6f70",
    "district": "61.07",
    "returned_from": "2025-01-01",
    "returned_to": "2025-12-31",
    "from": "2025-01-01",
    "to": "2025-12-31",
    "updated_since": "2025-07-01T00:00:00+07:00",
    "trafficking_status": "possible",
    "return_type": "deported",
    "acknowledged": False,
    "notify": True,
    "role": "received",
    "status": ["requested", "received"],
    "reason": "suspected_tppo_victim",
    "urgency": "high",
    "overdue": True,
    "open": True,
    "to_agency": "POLRES-BENGKAYANG",
    "threshold": 10,
    "actor": "c_3f9a1b2c4d5e6f70",
    "agency": "BP3MI-KALBAR",
    "resource_type": "returnee",
    "resource_id": "0b5c9f3e-7a41-4f0e-9d1c-2a6f8e4b7c10",
    "action": "returnee.read",
    "chain": "61",
    "checkpoint": "eyJhbGciOiJFUzI1NiJ9.eyJjaGFpbiI6IjYxIn0.c2ln",
    IDEMPOTENCY_KEY: "push-2025-07-01-001",
    IF_MATCH: '"3"',
}
# group_by examples differ per operation; sort has its default.
_EXAMPLE_BY_OPERATION: dict[tuple[str, str], Any] = {
    ("stats.returnees", "group_by"): ["district", "month"],
    ("stats.referrals", "group_by"): ["district", "month"],
    ("audit.list", "from"): "2025-07-01T00:00:00+07:00",
    ("audit.list", "to"): "2025-07-02T00:00:00+07:00",
    ("stats.referrals", "status"): "requested",
    ("returnee.list", "sort"): "changes",
    ("notice.list", "sort"): "changes",
    ("referral.list", "sort"): "due_at",
    ("notice.list", "status"): "waiting_for_agency",
    ("region.get", "code"): "61.07.07",
}


def install(app: FastAPI, *, extend: list[Callable[[dict[str, Any]], None]] | None = None) -> None:
    """Replace ``app.openapi`` by the generator of the truthful document. Routes added later
    (a new resource package) are rewritten like the others; FastAPI's ``app.webhooks`` and
    OpenAPI's top-level ``webhooks`` are kept as generated; ``extend`` are further edits of the
    finished document."""
    edits = list(extend or [])
    done: list[dict[str, Any]] = []  # the document last rewritten

    def openapi() -> dict[str, Any]:
        # FastAPI's own generator (every setting of the app, its webhooks, regenerated when
        # routes are added), then the rewrite, once per generated document
        doc = FastAPI.openapi(app)
        if not done or done[0] is not doc:
            rewrite(doc, _operation_ids(app))
            for edit in edits:
                edit(doc)
            done[:] = [doc]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _operation_ids(app: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path) -> the route's name (``returnee.get``)."""
    out: dict[tuple[str, str], str] = {}
    for rc in iter_route_contexts(app.routes):  # through the included routers
        path = rc.path_format
        for m in rc.methods or ():
            if path is not None:
                out[(m.lower(), path)] = rc.name or ""
    return out


def rewrite(doc: dict[str, Any], names: dict[tuple[str, str], str] | None = None) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("FieldError", FIELD_ERROR_SCHEMA)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    schemas["OAuthError"] = OAUTH_ERROR_SCHEMA
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            name = (names or {}).get((method, path), op.get("operationId", ""))
            _operation(op, name, schemas)


def declared_statuses(doc: dict[str, Any]) -> dict[tuple[str, str], set[int]]:
    """(METHOD, path template) -> the statuses the document declares for it."""
    out: dict[tuple[str, str], set[int]] = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                out[(method.upper(), path)] = {int(s) for s in op["responses"] if s.isdigit()}
    return out


def _enum_values(schema: dict[str, Any], schemas: dict[str, Any]) -> tuple[list[Any] | None, bool]:
    """The closed set a parameter's schema allows (``None``: open), and whether it is a list."""
    def deref(s: dict[str, Any]) -> dict[str, Any]:
        ref = s.get("$ref", "")
        return schemas.get(ref.removeprefix(_REF), s) if ref.startswith(_REF) else s

    for branch in map(deref, schema.get("anyOf", [schema])):
        items = deref(branch.get("items", {}))
        if branch.get("type") == "array" and "enum" in items:
            return list(items["enum"]), True
        if "enum" in branch:
            return list(branch["enum"]), False
    return None, False


def _fits_enum(schema: dict[str, Any], schemas: dict[str, Any], example: Any) -> bool:
    values, is_list = _enum_values(schema, schemas)
    if values is None:
        return True
    items = example if isinstance(example, list) else [example]
    return all(v in values for v in items)


def _first_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """An example from the schema itself: its first enumerated value, or its own ``examples``."""
    values, is_list = _enum_values(schema, schemas)
    if values:
        return [values[0]] if is_list else values[0]
    for branch in schema.get("anyOf", [schema]):
        if branch.get("examples"):
            return branch["examples"][0]
    return schema["examples"][0] if schema.get("examples") else None


def _operation(op: dict[str, Any], name: str, schemas: dict[str, Any]) -> None:
    etag = bool(op.pop("x-sinergi-etag", False))
    oauth = bool(op.pop("x-sinergi-oauth-errors", False))
    closed = op.pop("x-sinergi-enums", {})
    params = op.setdefault("parameters", [])
    _alternative_scopes(op)
    names = set()
    for p in params:
        if p["in"] == "header" and p["name"].lower() == IF_MATCH.lower():
            p["name"], p["required"] = IF_MATCH, True
            p["description"] = "the resource's current `ETag` (428 without it, 412 when it is stale)"
            p["schema"] = {"type": "string"}
        if p["in"] == "header" and p["name"].lower() == IDEMPOTENCY_KEY.lower():
            p["name"] = IDEMPOTENCY_KEY
        names.add((p["in"], p["name"]))
        if p["name"] in closed:
            _apply_enum(p["schema"], closed[p["name"]])
        if "example" not in p and "examples" not in p:
            example = _EXAMPLE_BY_OPERATION.get((name, p["name"]), PARAMETER_EXAMPLES.get(p["name"]))
            if example is not None and not _fits_enum(p["schema"], schemas, example):
                example = None  # a name shared with another operation's parameter of another set
            if example is None and p["schema"].get("default") is not None:
                example = p["schema"]["default"]
            if example is None:
                example = _first_of(p["schema"], schemas)
            if example is not None:
                p["example"] = example
    if not params:
        op.pop("parameters")
    idempotent = ("header", IDEMPOTENCY_KEY) in names
    if_match = ("header", IF_MATCH) in names
    body = op.get("requestBody")
    if body is not None:
        _body_example(body, schemas)

    statuses = {429, 503}
    if oauth:  # the client authenticates itself; errors are RFC 6749's, the body limit and screens ours
        statuses |= {400, 401, 413}
    elif op.get("security"):
        statuses |= {401, 403}
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    if not oauth and (params or body is not None):
        statuses |= {400, 422}
    if not oauth and body is not None:
        statuses |= {413, 415}
    if if_match:
        statuses |= {412, 428}
    if idempotent:
        statuses |= {409, 422}
    responses = op.setdefault("responses", {})
    if _is_fastapi_422(responses.get("422")):
        del responses["422"]  # FastAPI's shape; ours is declared below
    statuses |= {int(s) for s in responses if s.isdigit() and int(s) >= 400}

    for code in sorted(statuses):
        key = str(code)
        reply = responses.setdefault(key, {})
        if not reply.get("description"):
            reply["description"] = _DESCRIPTIONS.get(code, "Error")
        if oauth and code in (400, 401):
            reply["content"] = {"application/json": {"schema": {"$ref": _REF + "OAuthError"}}}
            if code == 400:  # text the input screen refuses: a problem that also carries the RFC 6749 members
                reply["content"][PROBLEM_JSON] = {"schema": {"$ref": _REF + "Problem"}}
        elif not reply.get("content"):
            ref = "ValidationProblem" if code == 422 else "Problem"
            reply["content"] = {PROBLEM_JSON: {"schema": {"$ref": _REF + ref}}}
        headers = reply.setdefault("headers", {})
        if code in (429, 503):
            headers["Retry-After"] = _HEADERS["Retry-After"]
        if code in (401, 403) and not oauth:
            headers["WWW-Authenticate"] = _HEADERS["WWW-Authenticate"]

    for key, reply in responses.items():
        headers = reply.setdefault("headers", {})
        headers["X-Request-ID"] = _HEADERS["X-Request-ID"]
        if key.startswith("2"):
            if etag:
                headers["ETag"] = _HEADERS["ETag"]
            if idempotent:
                headers["Idempotent-Replayed"] = _HEADERS["Idempotent-Replayed"]
            if key == "201":
                headers["Location"] = _HEADERS["Location"]
    op["responses"] = dict(sorted(responses.items()))


def _is_fastapi_422(reply: dict[str, Any] | None) -> bool:
    if not reply:
        return False
    schema = reply.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _alternative_scopes(op: dict[str, Any]) -> None:
    """``require_scope(a, b)`` accepts a token holding either: one requirement object each."""
    security = op.get("security")
    if not security:
        return
    out: list[dict[str, list[str]]] = []
    for requirement in security:
        for scheme, scopes in requirement.items():
            if len(scopes) > 1:
                out.extend({scheme: [s]} for s in scopes)
            else:
                out.append({scheme: list(scopes)})
    op["security"] = out


def _body_example(body: dict[str, Any], schemas: dict[str, Any]) -> None:
    for media in body.get("content", {}).values():
        if "example" in media or "examples" in media:
            continue
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        target = schemas.get(ref.removeprefix(_REF), {}) if ref else schema
        examples = target.get("examples")
        if examples:
            media["example"] = copy.deepcopy(examples[0])
