"""Rate limits (429 with Retry-After), denials of unauthenticated callers audited per source and
minute, and chain verification that does not hold up writers.

Each test that wants a limit to bite runs its own app with low limits; the shared ``client``
fixture keeps the generous defaults (and makes the parties and their tokens).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from api.app import create_app
from api.core import clock
from api.core.audit import chain_hash
from api.core.db import sync_url
from api.core.settings import Settings
from models import AgencyKind, AuditEvent
from tests.conftest import assert_problem

BAD = {"Authorization": "Bearer not-a-token"}
T0 = datetime(2026, 12, 1, 9, 10, 5, tzinfo=UTC)  # five seconds into a minute


@asynccontextmanager
async def app_with(database_url: str, **settings: Any) -> AsyncIterator[Any]:
    """An app of its own (own limiter, own denial tallies), started and stopped."""
    app = create_app(Settings(**({"database_url": database_url, "mode": "development", "db_pool_size": 10} | settings)),
                     configure_logging=False)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def http(app: Any, source: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from ``source`` (the address the limits key on)."""
    transport = httpx.ASGITransport(app=app, client=(source, 40000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def chain(database_url: str) -> list[dict[str, Any]]:
    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.connect() as c:
            rows = c.execute(sa.text(
                "SELECT seq, action, outcome, client_id, body FROM audit_event WHERE chain = '61' ORDER BY seq"))
            return [dict(r._mapping) | {"body": orjson.loads(r.body)} for r in rows]
    finally:
        eng.dispose()


def assert_429(r: httpx.Response) -> int:
    body = assert_problem(r, 429, "too-many-requests")
    retry = int(r.headers["retry-after"])
    assert retry >= 1 and body["retry_after"] == retry
    return retry


@pytest.fixture
async def auditor(make_party):
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


@pytest.fixture
async def police(make_party):
    return await make_party("POLDA-KALBAR", "61", ["audit:read"], kind=AgencyKind.police)


# --- per client ------------------------------------------------------------------------------


async def test_a_client_over_its_limit_gets_429_with_retry_after(database_url, auditor):
    with clock.frozen(T0):
        headers = await auditor.headers()
        async with app_with(database_url, rate_client=3) as app, http(app) as c:
            for _ in range(3):
                assert (await c.get("/v1/audit", headers=headers, params={"limit": 1})).status_code == 200
            r = await c.get("/v1/audit", headers=headers, params={"limit": 1})
            retry = assert_429(r)
            # Retry-After is honest: a caller that waits that long is let through.
            with clock.frozen(T0 + timedelta(seconds=retry)):
                assert (await c.get("/v1/audit", headers=headers)).status_code == 200


async def test_clients_do_not_throttle_each_other(database_url, auditor, police):
    with clock.frozen(T0):
        one, two = await auditor.headers(), await police.headers()
        async with app_with(database_url, rate_client=2) as app, http(app) as c:
            assert [(await c.get("/v1/audit", headers=one)).status_code for _ in range(3)] == [200, 200, 429]
            # the same address, another client: its own allowance
            assert [(await c.get("/v1/audit", headers=two)).status_code for _ in range(3)] == [200, 200, 429]


# --- per source --------------------------------------------------------------------------------


async def test_bad_tokens_from_one_source_get_429_but_a_valid_token_from_it_still_works(database_url, auditor):
    with clock.frozen(T0):
        headers = await auditor.headers()
        async with app_with(database_url, rate_source=4) as app, http(app, "10.1.1.1") as c, \
                http(app, "10.2.2.2") as other:
            assert [(await c.get("/v1/audit", headers=BAD)).status_code for _ in range(4)] == [401] * 4
            assert_429(await c.get("/v1/audit", headers=BAD))
            assert_429(await c.get("/v1/audit"))  # no token at all counts the same
            # the partner behind the same address is counted as its client, not as the source
            assert (await c.get("/v1/audit", headers=headers)).status_code == 200
            # another source is not affected
            assert (await other.get("/v1/audit", headers=BAD)).status_code == 401


async def test_the_token_endpoint_is_limited_per_source(database_url, auditor):
    with clock.frozen(T0):
        async with app_with(database_url, rate_token=3) as app, http(app, "10.1.1.1") as c, \
                http(app, "10.2.2.2") as other:
            creds = {"data": {"grant_type": "client_credentials"}, "auth": (auditor.client_id, auditor.client_secret)}
            assert [(await c.post("/oauth/token", **creds)).status_code for _ in range(3)] == [200] * 3
            refused = await c.post("/oauth/token", **creds)
            assert_429(refused)
            # the endpoint's errors follow RFC 6749 §5.2: an OAuth client reads this one too
            assert refused.json()["error"] == "temporarily_unavailable"
            assert "retry after" in refused.json()["error_description"]
            revoked = await c.post("/oauth/revoke", data={"token": "x"}, auth=creds["auth"])
            assert_429(revoked)
            assert revoked.json()["error"] == "temporarily_unavailable"
            assert_429(await c.post("/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(auditor.client_id, "a guess")))
            assert (await other.post("/oauth/token", **creds)).status_code == 200
        refused = [e for e in chain(database_url) if e["body"]["detail"].get("status") == 429]
        assert len(refused) == 1 and refused[0]["action"] == "token.issue"  # the first; the rest counted


async def test_a_zero_limit_is_no_limit(database_url, auditor):
    with clock.frozen(T0):
        headers = await auditor.headers()
        async with app_with(database_url, rate_client=0, rate_source=0) as app, http(app) as c:
            replies = [await c.get("/v1/audit", headers=h, params={"limit": 1}) for h in [headers, BAD] * 20]
            assert [r.status_code for r in replies] == [200, 401] * 20


# --- denials audited per source and minute ---------------------------------------------------------


async def flood(c: httpx.AsyncClient, n: int, clients: int = 16) -> list[int]:
    """``n`` bad-token requests from ``clients`` concurrent callers."""
    statuses: list[int] = []

    async def caller(k: int) -> None:
        for _ in range(k):
            statuses.append((await c.get("/v1/audit", headers=BAD)).status_code)

    await asyncio.gather(*(caller(n // clients + (i < n % clients)) for i in range(clients)))
    return statuses


async def test_a_flood_of_bad_tokens_makes_a_bounded_number_of_entries_and_a_summary(database_url, auditor):
    before = len(chain(database_url))
    with clock.frozen(T0):
        async with app_with(database_url, rate_source=50) as app, http(app) as c:
            statuses = await flood(c, 200)
            assert statuses.count(401) == 50 and statuses.count(429) == 150
            added = chain(database_url)[before:]
            assert [(e["action"], e["outcome"]) for e in added] == [("audit.list", "denied")]  # the first only
            with clock.frozen(T0 + timedelta(minutes=1)):  # the next minute's first refusal closes the last one
                assert (await c.get("/v1/audit", headers=BAD)).status_code == 429
                added = chain(database_url)[before:]
                summaries = [e for e in added if e["action"] == "auth.denied.summary"]
                assert len(added) == 3 and len(summaries) == 1
                detail = summaries[0]["body"]["detail"]
                assert {k: detail[k] for k in ("minute", "count", "recorded_individually", "statuses", "ip")} == {
                    "minute": "2026-12-01T09:10Z", "count": 200, "recorded_individually": 1,
                    "statuses": {"401": 50, "429": 150}, "ip": "127.0.0.1"}
                assert summaries[0]["outcome"] == "denied"
                r = await c.get("/v1/audit/verify", headers=await auditor.headers())
                assert r.status_code == 200 and r.json()["ok"] is True, r.text


async def test_a_flood_of_wrong_client_secrets_is_summarised_too(database_url, auditor):
    """The token endpoint is the one every anonymous caller can reach: its refusals (a wrong
    secret, an unknown client) are summarised per source, claimed client and minute like those
    of bad bearer tokens, and the reply stays RFC 6749's."""
    before = len(chain(database_url))
    wrong = {"grant_type": "client_credentials", "client_id": auditor.client_id, "client_secret": "wrong"}
    with clock.frozen(T0):
        async with app_with(database_url) as app, http(app, "10.7.7.7") as c:
            for _ in range(40):
                r = await c.post("/oauth/token", data=wrong)
                assert r.status_code == 401 and r.json()["error"] == "invalid_client"
                assert r.headers["www-authenticate"].startswith("Bearer")
            added = chain(database_url)[before:]
            assert [(e["action"], e["outcome"]) for e in added] == [("token.issue", "denied")]  # the first only
            assert added[0]["body"]["detail"]["reason"] == "invalid_client"
    added = chain(database_url)[before:]
    summary = [e["body"]["detail"] for e in added if e["action"] == "auth.denied.summary"]
    assert len(added) == 2 and summary[0]["count"] == 40 and summary[0]["ip"] == "10.7.7.7"


async def test_the_open_minutes_are_summarised_when_the_server_stops(database_url):
    before = len(chain(database_url))
    with clock.frozen(T0):
        async with app_with(database_url) as app, http(app, "10.9.9.9") as c:
            assert set(await flood(c, 30, clients=4)) == {401}
            assert len(chain(database_url)) == before + 1
    added = chain(database_url)[before:]
    assert [e["action"] for e in added] == ["audit.list", "auth.denied.summary"]
    assert added[1]["body"]["detail"]["count"] == 30 and added[1]["body"]["detail"]["ip"] == "10.9.9.9"


async def test_many_sources_share_one_summary_past_the_per_minute_limit(database_url):
    before = len(chain(database_url))
    with clock.frozen(T0):
        async with app_with(database_url, rate_audit_sources=2) as app:
            for i in range(5):
                async with http(app, f"10.0.0.{i}") as c:
                    for _ in range(3):
                        assert (await c.get("/v1/audit", headers=BAD)).status_code == 401
            assert len(chain(database_url)) == before + 2  # the first two sources' first refusals
    summaries = [e["body"] for e in chain(database_url)[before:] if e["action"] == "auth.denied.summary"]
    by_ip = {s["detail"].get("ip"): s["detail"] for s in summaries}
    assert by_ip["10.0.0.0"]["count"] == by_ip["10.0.0.1"]["count"] == 3
    shared = by_ip[None]
    assert shared["overflow"] is True and shared["pairs"] == 3 and shared["count"] == 9
    assert shared["recorded_individually"] == 0


async def test_an_authenticated_callers_denials_are_each_audited(database_url, make_party):
    # Aggregation is for callers who have not authenticated: a 403 is the caller's own entry.
    clerk = await make_party("DINSOS-KALBAR", "61", ["stats:read"], kind=AgencyKind.social_services)
    before = len(chain(database_url))
    headers = await clerk.headers()
    async with app_with(database_url) as app, http(app) as c:
        for _ in range(3):
            assert (await c.get("/v1/audit", headers=headers)).status_code == 403
    added = [e for e in chain(database_url)[before:] if e["action"] == "audit.list"]
    assert [(e["outcome"], e["client_id"]) for e in added] == [("denied", clerk.client_id)] * 3


# --- verification does not hold up writers ------------------------------------------------------


def long_chain(database_url: str, n: int) -> None:
    """``n`` valid entries appended to chain 61 directly (the arrangement, not the subject)."""
    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.begin() as c:
            head = c.execute(sa.text("SELECT seq, hash FROM audit_head WHERE chain = '61'")).first()
            seq, prev = (head[0], head[1]) if head else (0, "0" * 64)
            if head is None:
                c.execute(sa.text("INSERT INTO audit_head (chain, seq, hash, prev_hash) "
                                  "VALUES ('61', 0, :g, :g)"), {"g": prev})
            at = datetime(2026, 11, 1, tzinfo=UTC)
            rows = []
            for i in range(n):
                seq += 1
                ident = uuid.uuid4()
                doc = {"id": str(ident), "chain": "61", "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                       "client_id": "filler", "agency": "FILLER", "action": "returnee.read",
                       "resource_type": "returnee", "resource_id": str(i), "outcome": "allowed",
                       "request_id": None, "subjects": [], "detail": {}}
                body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
                digest = chain_hash(prev, seq, body)
                rows.append({"chain": "61", "seq": seq, "id": ident, "occurred_at": at, "client_id": "filler",
                             "agency": "FILLER", "action": "returnee.read", "resource_type": "returnee",
                             "resource_id": str(i), "outcome": "allowed", "request_id": None, "body": body,
                             "prev_hash": prev, "hash": digest})
                prev = digest
            c.execute(AuditEvent.__table__.insert(), rows)
            c.execute(sa.text("UPDATE audit_head SET seq = :s, hash = :h WHERE chain = '61'"), {"s": seq, "h": prev})
    finally:
        eng.dispose()


async def test_a_write_completes_while_a_verification_walks_the_chain(database_url, client, db, auditor, police):
    headers = await auditor.headers()
    long_chain(database_url, 40_000)
    walking = asyncio.Event()

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _seen(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # verify reads the head (on the request's own session), then walks
        if statement.lstrip().upper().startswith("SELECT") and "FROM audit_head" in statement:
            walking.set()

    verification = asyncio.create_task(client.get("/v1/audit/verify", headers=headers))
    await walking.wait()
    write = asyncio.create_task(client.post(  # a write: issuing a token appends to the chain
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(police.client_id, police.client_secret)))
    done, _ = await asyncio.wait({verification, write}, return_when=asyncio.FIRST_COMPLETED)
    assert write in done and verification not in done  # the write did not wait for the walk
    assert write.result().status_code == 200
    r = await verification
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    event.remove(db.engine.sync_engine, "before_cursor_execute", _seen)
    entries = chain(database_url)
    issued = next(e["seq"] for e in entries if e["action"] == "token.issue" and e["client_id"] == police.client_id
                  and e["seq"] > 40_000)
    verified = next(e["seq"] for e in entries if e["action"] == "audit.verify")
    assert issued < verified  # committed while the verification was still walking
    assert r.json()["checked"] < verified


async def test_concurrent_verifications_do_not_exhaust_a_small_pool(database_url, auditor, backend):
    if backend.name != "postgresql":
        pytest.skip("the pool size setting is PostgreSQL's")
    headers = await auditor.headers()
    # Each verification used to hold its session's connection while its walk took a second one.
    async with app_with(database_url, db_pool_size=2) as app, http(app) as c:
        replies = await asyncio.gather(*(c.get("/v1/audit/verify", headers=headers) for _ in range(6)),
                                       *(c.get("/v1/audit/checkpoint", headers=headers) for _ in range(6)))
    assert [r.status_code for r in replies] == [200] * 12


@pytest.mark.parametrize(("limit", "before", "now", "offset"), [
    (3, 0, 4, 0), (3, 0, 4, 59), (5, 4, 3, 0), (5, 8, 3, 17), (10, 12, 1, 10), (10, 8, 7, 30), (1, 1, 1, 0),
    (1, 0, 2, 59),
])
async def test_retry_after_is_the_first_second_that_lets_a_request_through(limit, before, now, offset):
    """``before`` requests in the previous window, ``now`` in this one, ``offset`` seconds into
    it (the last one refused): a request ``Retry-After`` seconds later passes, one a second
    earlier would not."""
    from api.http.ratelimit import MemoryLimiter

    start = datetime(2026, 12, 1, 9, 10, tzinfo=UTC)

    async def replay() -> tuple[MemoryLimiter, Any]:
        limiter = MemoryLimiter(60)
        with clock.frozen(start - timedelta(seconds=30)):
            for _ in range(before):
                await limiter.hit("k", limit)
        with clock.frozen(start + timedelta(seconds=offset)):
            for _ in range(now):
                verdict = await limiter.hit("k", limit)
        return limiter, verdict

    limiter, verdict = await replay()
    assert not verdict.allowed
    at = start + timedelta(seconds=offset + verdict.retry_after)
    with clock.frozen(at):
        assert (await limiter.hit("k", limit)).allowed
    if verdict.retry_after > 1:
        limiter, _ = await replay()
        with clock.frozen(at - timedelta(seconds=1)):
            assert not (await limiter.hit("k", limit)).allowed
