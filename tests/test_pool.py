"""A request uses one pooled connection: more concurrent requests than the pool holds wait
their turn and are all answered, none 503 while the database is fine.

The token endpoint (which signs with the key store's key) and audit verification and
checkpoints (which read the chain and the keys) used to take a second connection while the
request's own session held one; with every connection of the pool held by such requests, each
waited for a connection none would give back, until the pool's checkout bound answered 503
"database not reachable". The key store also reloaded under a lock held across its query, so
one stuck reload held up every authentication.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.core import keys as keystore
from api.core.settings import Settings
from models import AgencyKind
from tests.conftest import MakeParty

POOL = 3
CONCURRENT = 4 * POOL


@pytest.fixture
def pool_timeout() -> float:
    """The pool's checkout bound. Long enough that twelve requests served three at a time all
    get a connection on a loaded machine; a deadlock still shows, as every request waiting the
    whole bound and answered 503 (no connection is ever given back)."""
    return 20


@pytest.fixture
def settings(database_url: str, pool_timeout: float) -> Settings:
    # a small pool, no overflow (as always)
    return Settings(database_url=database_url, mode="development", db_pool_size=POOL,
                    db_pool_timeout=pool_timeout)


@pytest.fixture
async def auditor(make_party: MakeParty) -> Any:
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


def stale(app: Any) -> None:
    """The key store's copy of the keys is as after a while without a request (older than its
    refresh interval): the next use refreshes it."""
    app.state.services.keys._loaded_at -= keystore.REFRESH_SECONDS + 5


async def test_concurrent_token_requests_after_idle_are_all_answered(app: Any, client: httpx.AsyncClient,
                                                                     auditor: Any) -> None:
    stale(app)
    replies = await asyncio.gather(*(
        client.post("/oauth/token", data={"grant_type": "client_credentials"},
                    auth=(auditor.client_id, auditor.client_secret))
        for _ in range(CONCURRENT)
    ))
    assert [r.status_code for r in replies] == [200] * CONCURRENT, [r.text for r in replies if r.status_code != 200]


async def test_concurrent_verifies_and_checkpoints_after_idle_are_all_answered(app: Any, client: httpx.AsyncClient,
                                                                               auditor: Any) -> None:
    headers = await auditor.headers()
    signed = (await client.get("/v1/audit/checkpoint", headers=headers)).json()["checkpoint"]
    stale(app)
    calls = []
    for i in range(CONCURRENT):
        if i % 3 == 0:
            calls.append(client.get("/v1/audit/checkpoint", headers=headers))
        elif i % 3 == 1:
            calls.append(client.get("/v1/audit/verify", headers=headers, params={"checkpoint": signed}))
        else:
            calls.append(client.get("/v1/audit/verify", headers=headers))
    replies = await asyncio.gather(*calls)
    assert [r.status_code for r in replies] == [200] * CONCURRENT, [r.text for r in replies if r.status_code != 200]
    assert all(r.json().get("ok", True) for r in replies)


async def test_a_stuck_key_reload_holds_up_no_authentication(settings: Settings) -> None:
    """Every connection of the pool is taken by requests that wait (here: held by the test);
    the key store's copy is stale. Requests that need no connection for their keys are not
    held up by a refresh that waits for one: a token verifies at once, and the JWKS answers."""
    application = create_app(settings, configure_logging=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            svc = application.state.services
            r = await http.get("/.well-known/jwks.json")
            assert r.status_code == 200
            held = [await svc.db.engine.connect() for _ in range(POOL)]  # the pool is empty
            try:
                stale(application)
                r = await asyncio.wait_for(http.get("/.well-known/jwks.json"), 2)
                assert r.status_code == 200 and r.json()["keys"]
                kid = r.json()["keys"][0]["kid"]
                assert await asyncio.wait_for(svc.keys.verifier(kid), 2) is not None
            finally:
                for conn in held:
                    await conn.close()


@pytest.mark.parametrize("pool_timeout", [3])
async def test_no_free_connection_within_the_bound_is_a_busy_503(app: Any, client: httpx.AsyncClient,
                                                                auditor: Any) -> None:
    """Every connection held elsewhere (here by the test) past ``SINERGI_DB_POOL_TIMEOUT``: the
    request is answered 503 ``/problems/busy`` with ``Retry-After`` (contention, not an
    outage), within the bound; once a connection is free again, it is served."""
    import time

    headers = await auditor.headers()
    db = app.state.services.db
    held = [await db.engine.connect() for _ in range(POOL)]
    try:
        started = time.monotonic()
        r = await client.get("/v1/audit", headers=headers, params={"limit": 1})
        took = time.monotonic() - started
    finally:
        for conn in held:
            await conn.close()
    assert r.status_code == 503 and r.json()["type"] == "/problems/busy", r.text
    assert r.headers["retry-after"] == "1"
    assert took < 3 * db.settings.db_pool_timeout + 2
    assert (await client.get("/v1/audit", headers=headers, params={"limit": 1})).status_code == 200


async def _end_the_pools_connections(db: Any, backend: Any) -> int:
    """As a restart of the database or a firewall dropping idle links would: every connection
    the app's pool holds, ended by the server (the pool does not know)."""
    import sqlalchemy as sa

    from api.core.db import sync_url
    from tests.conftest import PG_ADMIN_URL

    eng = sa.create_engine(sync_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            name = db.engine.url.database
            return len(c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name}).all())
    finally:
        eng.dispose()


@pytest.mark.parametrize("ping_idle", [0.0, 3600.0])
async def test_connections_the_server_ended_while_pooled(backend: Any, database_url: str, make_party: MakeParty,
                                                         ping_idle: float) -> None:
    """A pooled connection idle longer than ``db_ping_idle`` is pinged before use and replaced:
    the request is answered as if nothing happened. One used more recently is handed out as it
    is: its request fails as on a lost link (503 ``unavailable``, nothing changed, never a 500),
    and the pool replaces every connection of before the failure, so the next request is
    answered. (Rate limits off: the limiter's counter, which lets requests through when it
    cannot be reached, would otherwise meet the dead link first.)"""
    if backend.name != "postgresql":
        pytest.skip("a server ending pooled connections: PostgreSQL")
    app = create_app(Settings(database_url=database_url, mode="development", db_pool_size=POOL,
                              db_ping_idle=ping_idle, rate_client=0, rate_token=0), configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            party = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
            party.http = http
            headers = await party.headers()
            assert (await http.get("/v1/audit", headers=headers)).status_code == 200
            assert await _end_the_pools_connections(app.state.services.db, backend) >= 1
            first = await http.get("/v1/audit", headers=headers)
            if ping_idle == 0:
                assert first.status_code == 200, first.text
            else:
                assert first.status_code == 503, first.text
                assert first.headers["content-type"].startswith("application/problem+json")
                assert first.json()["type"].endswith("/unavailable"), first.json()
            again = await http.get("/v1/audit", headers=headers)
            assert again.status_code == 200, again.text
