"""Every wait for the database is bounded: a network that silently drops everything (a TCP
proxy on loopback in front of PostgreSQL, ``bench/proxy.py``, told to blackhole) gets each
request a 503 problem with ``Retry-After`` within the bounds, never a request that hangs;
``/readyz`` answers within its own bound and says what is wrong; ``/healthz`` stays alive;
once the network is back, the service serves again by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from api.core.errors import PROBLEM_JSON
from api.core.settings import Settings
from bench.proxy import Proxy
from models import AgencyKind
from tests.conftest import MakeParty
from tests.live import free_port

BOUNDS = {"db_connect_timeout": 2, "db_statement_timeout": 1.0, "db_reply_margin": 1.0, "db_pool_timeout": 2.0,
          "db_idle_in_transaction_timeout": 5.0, "readyz_timeout": 1.0}
# The longest a request may take while the network drops everything: the pool's ping of a
# pooled connection (the connect bound), a new connection (the connect bound), and the same
# again for its failure's audit entry, which cannot be written either; plus slack for a slow
# machine.
WORST = 4 * BOUNDS["db_connect_timeout"] + BOUNDS["db_statement_timeout"] + BOUNDS["db_reply_margin"] + 3


@pytest.fixture
async def proxy(backend: Any, database_url: str) -> AsyncIterator[Proxy]:
    if backend.name != "postgresql":
        pytest.skip("a network between the service and PostgreSQL")
    url = make_url(database_url)
    p = Proxy(free_port(), url.host or "127.0.0.1", url.port or 5432)
    await p.set_mode("pass")
    try:
        yield p
    finally:
        await p.set_mode("refuse")  # closes the listener and resets every connection


@pytest.fixture
def settings(database_url: str, proxy: Proxy) -> Settings:
    through = make_url(database_url).set(host="127.0.0.1", port=proxy.listen)
    return Settings(database_url=through.render_as_string(hide_password=False), mode="development",
                    db_pool_size=3, **BOUNDS)


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = await call
    return r, time.monotonic() - started


def assert_retryable_503(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert int(r.headers["retry-after"]) >= 1
    return r.json()


async def test_a_blackholed_database_gets_bounded_503s_and_the_service_recovers(
        app: Any, client: httpx.AsyncClient, make_party: MakeParty, proxy: Proxy) -> None:
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    headers = await auditor.headers()
    assert (await client.get("/v1/audit", headers=headers, params={"limit": 1})).status_code == 200
    assert (await client.get("/readyz")).status_code == 200

    await proxy.set_mode("blackhole")
    calls = [client.get("/v1/audit", headers=headers, params={"limit": 1}) for _ in range(5)]
    calls.append(client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(auditor.client_id, auditor.client_secret)))
    replies = await asyncio.wait_for(asyncio.gather(*(timed(c) for c in calls)), WORST + 10)
    kinds = set()
    for r, took in replies:
        assert took < WORST, (took, r.text)
        if r.headers["content-type"].startswith(PROBLEM_JSON):
            kinds.add(assert_retryable_503(r)["type"])
        else:  # the token endpoint's own error shape (RFC 6749) is not used for an outage
            raise AssertionError(r.text)
    assert kinds <= {"/problems/database-timeout", "/problems/busy"} and "/problems/database-timeout" in kinds, kinds

    r, took = await timed(client.get("/readyz"))
    assert took < BOUNDS["readyz_timeout"] + 1, took
    problem = assert_retryable_503(r)
    assert problem["detail"].startswith("database: ") and problem["database"] != "ok", problem
    r, took = await timed(client.get("/healthz"))
    assert r.status_code == 200 and took < 1

    await proxy.set_mode("pass")
    deadline = time.monotonic() + WORST + 10
    while True:
        r = await client.get("/v1/audit", headers=headers, params={"limit": 1})
        if r.status_code == 200:
            break
        assert time.monotonic() < deadline, f"no recovery: {r.text}"
        await asyncio.sleep(0.5)
    for _ in range(30):  # /readyz's own check may still be the one from the outage
        r = await client.get("/readyz")
        if r.status_code == 200:
            break
        await asyncio.sleep(0.2)
    assert r.status_code == 200, r.text


async def test_a_statement_past_its_bound_is_a_database_timeout(app: Any, client: httpx.AsyncClient,
                                                                make_party: MakeParty, database_url: str) -> None:
    """PostgreSQL gives up on a statement past ``SINERGI_DB_STATEMENT_TIMEOUT`` (here one held
    up by a lock another session holds) and the request is a retryable 503."""
    import sqlalchemy as sa

    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    headers = await auditor.headers()
    eng = sa.create_engine(database_url)  # straight to PostgreSQL: this test's own loop runs the proxy
    try:
        with eng.connect() as c:
            c.execute(sa.text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))
            r, took = await timed(client.get("/v1/audit/verify", headers=headers))
            c.rollback()
    finally:
        eng.dispose()
    assert took < WORST
    assert assert_retryable_503(r)["type"] == "/problems/database-timeout"
    assert (await client.get("/v1/audit/verify", headers=headers)).status_code == 200


async def test_a_commit_the_database_refused_in_time_is_known_not_made(app: Any, client: httpx.AsyncClient,
                                                                       make_party: MakeParty,
                                                                       database_url: str) -> None:
    """The statement sent with the COMMIT (the audit append) waits on a lock past the statement
    bound and PostgreSQL cancels it: the server answered, the transaction is rolled back, so
    the caller is told nothing was changed (a retryable 503 ``database-timeout``), not that the
    outcome is unknown, and nothing was written."""
    import sqlalchemy as sa

    from tests.test_idempotency import referral_body

    await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond", kind=AgencyKind.police)
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    headers = await sender.headers()
    body = {**referral_body(), "note": "refused in time"}
    eng = sa.create_engine(database_url)  # straight to PostgreSQL: this test's own loop runs the proxy
    try:
        with eng.connect() as c:
            c.execute(sa.text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))
            r, took = await timed(client.post("/v1/referrals", json=body, headers=headers))
            c.rollback()
        with eng.connect() as c:
            made = c.execute(sa.text("SELECT count(*) FROM referral WHERE note = :n"), {"n": body["note"]}).scalar()
    finally:
        eng.dispose()
    assert took < WORST
    problem = assert_retryable_503(r)
    assert problem["type"] == "/problems/database-timeout", problem
    assert "nothing was changed" in problem["detail"], problem
    assert made == 0
    again = await client.post("/v1/referrals", json=body, headers=headers)
    assert again.status_code == 201, again.text
