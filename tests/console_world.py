"""A module's world for the console's tests: the demo data, one app, an HTTP client per officer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pyotp

from api.app import create_app
from api.core import clock
from api.core.settings import Settings
from tests.demo_world import DemoCopy
from tests.reply_shapes import CheckReplies

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class ConsoleWorld:
    app: Any
    demo: dict[str, Any]
    transport: httpx.ASGITransport

    def browser(self) -> httpx.AsyncClient:
        """A fresh "browser": its own cookie jar, no redirects followed."""
        return httpx.AsyncClient(transport=self.transport, base_url="http://testserver")

    def password(self, email: str) -> str:
        return self.demo["officers"][email]["password"]

    async def token(self, agency: str) -> str:
        c = self.demo["clients"][agency]
        async with self.browser() as http:
            r = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(c["client_id"], c["client_secret"]))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    @asynccontextmanager
    async def signed_in(self, email: str, password: str | None = None,
                        code: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
        async with self.browser() as http:
            r = await sign_in(http, email, password or self.password(email), code)
            assert r.status_code == 303 and r.headers["location"] == "/console", (r.status_code, r.headers)
            yield http


async def sign_in(http: httpx.AsyncClient, email: str, password: str, code: str | None = None,
                  csrf: str | None = None) -> httpx.Response:
    form = await http.get("/console/masuk")
    assert form.status_code == 200
    token = CSRF.search(form.text)
    assert token is not None
    data = {"csrf": token.group(1) if csrf is None else csrf, "email": email, "password": password, "next": "/console"}
    if code is not None:
        data["code"] = code
    return await http.post("/console/masuk", data=data)


def later_code(secret: str) -> str:
    """The TOTP code of the next 30-second step: accepted now (it allows for a clock a little
    behind), and after the code just used (a code is accepted once)."""
    return pyotp.TOTP(secret).at(clock.now() + timedelta(seconds=30))


def csrf_of(page: str) -> str:
    m = CSRF.search(page)
    assert m is not None, page[:500]
    return m.group(1)


async def console_world(world: DemoCopy, **over: Any) -> AsyncIterator[ConsoleWorld]:
    """The app on ``world`` (a copy of the demo world), its settings changed by ``over``."""
    settings: Settings = world.settings.model_copy(update=over)
    demo = world.demo
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        checked = CheckReplies(app)
        yield ConsoleWorld(app, demo, httpx.ASGITransport(app=checked, raise_app_exceptions=False))
    assert not checked.mismatches, checked.mismatches
