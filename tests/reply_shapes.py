"""Every reply the suite receives is checked against the model its route declares.

A route declares its reply with ``response_model=``; some build the JSON themselves for speed
(the batch push encodes its reply once and stores it for idempotent replays), so FastAPI does
not check those. :class:`CheckReplies` wraps the application under test: each successful JSON
reply of a route with a declared model is validated against that model, and a reply that does
not match fails the test that received it, whatever that test was about.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_adapters: dict[Any, TypeAdapter[Any]] = {}


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
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                json_reply.append(ctype.split(b";")[0].strip() == b"application/json")
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        route = scope.get("route")
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
