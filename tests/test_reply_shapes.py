"""The reply checker of the suite (tests/reply_shapes.py) sees what it must see."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tests.reply_shapes import CheckReplies, ReplyMismatch


class Thing(BaseModel):
    id: int
    name: str


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/good", response_model=Thing)
    async def good() -> JSONResponse:
        return JSONResponse({"id": 1, "name": "x"})

    @app.get("/bad", response_model=Thing)
    async def bad() -> JSONResponse:  # built by hand, and wrong: FastAPI would not notice
        return JSONResponse({"id": "one"})

    @app.get("/error", response_model=Thing, responses={404: {"description": "declared (the status check)"}})
    async def error() -> JSONResponse:
        return JSONResponse({"detail": "nope"}, status_code=404)

    return app


async def test_a_reply_that_differs_from_its_declared_model_fails() -> None:
    checked = CheckReplies(_app())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=checked), base_url="http://t") as c:
        assert (await c.get("/good")).status_code == 200
        assert (await c.get("/error")).status_code == 404  # errors are problem documents, not the model
        with pytest.raises(ReplyMismatch):
            await c.get("/bad")
    assert checked.checked == 1 and len(checked.mismatches) == 1
