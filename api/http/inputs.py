"""Screening of what a caller sends, before any route or database sees it.

The rules are :mod:`api.core.text`'s: no NUL or other control character in any text (JSON
strings may hold tab, line feed and carriage return), every string bounded. A query value,
a path value or a form field that breaks them is a ``400`` problem (``bad-input``), a JSON
string a ``422`` (``validation-error``), each naming the fields at fault, so such a value can
never reach PostgreSQL (which refuses NUL in text: a 500) or the audit chain.

A batch whose records are accepted or rejected one by one (``POST /v1/returnees/batch``: "one
bad record does not stop the others") names its list in :data:`PER_RECORD`: the strings inside
its records are left to the route's own per-record validation, which reports them in that
record's result; the rest of the document is screened as any other.

Where it runs: :func:`screen` in every scope-checked dependency (:func:`api.http.auth.require_scope`),
after authentication, so the failure entry names the caller; :func:`screen_form` in the
request's unit (:mod:`api.http.session`) for the form bodies of ``/oauth/token`` and
``/oauth/revoke``, whose callers authenticate in the form itself. Either way the failure is
recorded by the unit, like any other failed request.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.core import text as text_rules
from api.core.errors import Problem, ValidationFailed

_MAX_REPORTED = 20  # fields named in one problem


# Route name -> the top-level list whose records the route validates one by one.
PER_RECORD: dict[str, str] = {"returnee.batch": "records"}


class BadInput(Problem):
    status, slug, title = 400, "bad-input", "The request holds text that is not allowed"


def _name(part: Any) -> str:
    return text_rules.bounded(str(part), text_rules.MAX_ID)


def _check(errors: list[dict[str, str]], field: str, value: str, limit: int, multiline: bool = False) -> None:
    if len(errors) < _MAX_REPORTED and (why := text_rules.fault(value, limit=limit, multiline=multiline)):
        errors.append({"field": field, "message": why})


def _query_and_path(request: Request) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    for key, value in request.query_params.multi_items():
        _check(errors, f"query.{_name(key)}", key, text_rules.MAX_PATH_VALUE)
        _check(errors, f"query.{_name(key)}", value, text_rules.MAX_TEXT)
    for key, value in request.path_params.items():
        if isinstance(value, str):
            _check(errors, f"path.{_name(key)}", value, text_rules.MAX_PATH_VALUE)
    return errors


def json_faults(doc: Any, per_record: str | None = None) -> list[dict[str, str]]:
    """Every string of a parsed JSON document (keys too) that breaks the rules, in document
    order, as validation errors (``items.3.note``); not inside the records of the top-level
    list ``per_record``."""
    errors: list[dict[str, str]] = []
    if per_record is not None and isinstance(doc, dict) and isinstance(doc.get(per_record), list):
        doc = {k: v for k, v in doc.items() if k != per_record}
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while stack and len(errors) < _MAX_REPORTED:
        path, value = stack.pop()
        field = ".".join(_name(p) for p in path) or "body"
        if isinstance(value, str):
            _check(errors, field, value, text_rules.MAX_TEXT, multiline=True)
        elif isinstance(value, dict):
            children = []
            for key, item in value.items():
                key = str(key)
                before = len(errors)
                _check(errors, ".".join(_name(p) for p in (*path, key)), key, text_rules.MAX_PATH_VALUE)
                if len(errors) == before:
                    children.append(((*path, key), item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([((*path, i), item) for i, item in enumerate(value)]))
    return errors


async def _json_body(request: Request) -> Any:
    """The request's JSON document as FastAPI parsed it (parsing is cached on the request),
    or ``None`` when there is none the route reads."""
    ctype = request.headers.get("content-type", "")
    main = ctype.split(";", 1)[0].strip().lower()
    if ctype and not (main == "application/json" or (main.startswith("application/") and main.endswith("+json"))):
        return None
    if not await request.body():
        return None
    try:
        return await request.json()
    except ValueError:  # malformed: FastAPI refused it already, or the route takes no body
        return None


async def screen(request: Request) -> None:
    """Query, path and JSON body (see the module's docstring)."""
    errors = _query_and_path(request)
    if errors:
        raise BadInput("Text in the query or the path is not allowed; see 'errors'", errors=errors)
    doc = await _json_body(request)
    route = getattr(request.scope.get("route"), "name", None)
    if doc is not None and (errors := json_faults(doc, PER_RECORD.get(route or ""))):
        raise ValidationFailed("Text in the body is not allowed; see 'errors'", errors=errors)


async def screen_form(request: Request) -> None:
    """A form body's fields. The problem also carries OAuth's ``error`` / ``error_description``
    (RFC 6749 §5.2), since the token endpoints are the ones that take forms."""
    if not request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        return
    form = await request.form()
    errors: list[dict[str, str]] = []
    for key, value in form.multi_items():
        _check(errors, _name(key), key, text_rules.MAX_PATH_VALUE)
        if isinstance(value, str):
            _check(errors, _name(key), value, text_rules.MAX_TEXT)
    if errors:
        detail = "Text in the form is not allowed; see 'errors'"
        raise BadInput(detail, errors=errors, error="invalid_request", error_description=detail)

