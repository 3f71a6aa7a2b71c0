"""Every reply the suite receives is checked against the model its route declares.

A route declares its reply with ``response_model=``; some build the JSON themselves for speed
(the batch push encodes its reply once and stores it for idempotent replays), so FastAPI does
not check those. :class:`CheckReplies` wraps the application under test: each successful JSON
reply of a route with a declared model is validated against that model, and a reply that does
not match fails the test that received it, whatever that test was about.

The same wrapper holds the OpenAPI document to the replies: every status a documented
operation replies with must be declared for it, in the media type declared (a problem as
``application/problem+json``), so the document cannot drift from what the server sends.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_adapters: dict[Any, TypeAdapter[Any]] = {}
# The document's declarations: (METHOD, path template) -> status -> declared media types. Every
# app of the suite is made by create_app, so one document per set of routes.
_declared: dict[tuple[tuple[str, tuple[str, ...]], ...], dict[tuple[str, str], dict[int, set[str]]]] = {}


def declared(app: Any) -> dict[tuple[str, str], dict[int, set[str]]]:
    routes = tuple(sorted((getattr(r, "path", ""), tuple(sorted(getattr(r, "methods", None) or ())))
                          for r in app.routes))
    found = _declared.get(routes)
    if found is None:
        found = {}
        for path, item in app.openapi()["paths"].items():
            for method, op in item.items():
                if isinstance(op, dict) and "responses" in op:
                    found[(method.upper(), path)] = {
                        int(code): set(reply.get("content", {})) for code, reply in op["responses"].items()}
        _declared[routes] = found
    return found


class ReplyMismatch(AssertionError):
    pass


class CheckReplies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.checked = 0
        self.mismatches: list[str] = []

    def __getattr__(self, name: str) -> Any:  # state, router, dependency_overrides...
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []
        json_reply: list[bool] = []
        ctype_of: list[str] = []
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                ctype_of.append(ctype.split(b";")[0].strip().decode("latin-1"))
                json_reply.append(ctype.split(b";")[0].strip() == b"application/json")
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        route = scope.get("route")
        if status and route is not None:
            self._check_declared(scope, route, status[0], ctype_of[0] if ctype_of else "")
        model = getattr(route, "response_model", None)
        if not status or not 200 <= status[0] < 300 or not json_reply[0] or model is None:
            return
        adapter = _adapters.get(model)
        if adapter is None:
            adapter = _adapters[model] = TypeAdapter(model)
        try:
            adapter.validate_python(orjson.loads(bytes(body)), strict=False)
        except ValidationError as exc:
            problem = f"{scope['method']} {scope['path']} ({route.name}) does not match {model}: {exc}"
            self.mismatches.append(problem)
            raise ReplyMismatch(problem) from None
        self.checked += 1

    def _check_declared(self, scope: Scope, route: Any, status: int, ctype: str) -> None:
        if not getattr(route, "include_in_schema", False) or not hasattr(self.app, "openapi"):
            return
        ops = declared(self.app)
        replies = ops.get((scope["method"], route.path))
        if replies is None:  # HEAD, or a route outside the document
            return
        where = f"{scope['method']} {route.path} ({route.name})"
        if status not in replies:
            problem = f"{where} replied {status}, which the OpenAPI document does not declare ({sorted(replies)})"
        elif replies[status] and ctype and ctype not in replies[status]:
            problem = f"{where} replied {status} as {ctype}, the document declares {sorted(replies[status])}"
        else:
            return
        self.mismatches.append(problem)
        raise ReplyMismatch(problem)
