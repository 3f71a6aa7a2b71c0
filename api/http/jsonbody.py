"""Request bodies parsed with orjson.

FastAPI reads a JSON body through ``Request.json()`` (the standard ``json`` module). For large
bodies (a batch of returnees) orjson parses the same document several times faster. Where orjson
refuses a body (malformed JSON, and what only the standard module accepts: ``NaN``, a byte-order
mark, UTF-16, lone surrogates), the standard module parses it, so a malformed body fails with
exactly the error (position, message) and problem it failed with before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


class OrjsonRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is parsed by :class:`OrjsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive, request._send))

        return route_handler
