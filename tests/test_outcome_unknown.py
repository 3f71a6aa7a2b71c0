"""A COMMIT whose answer is lost: the change is made, the service cannot know it. The caller is
told the outcome is unknown (never "nothing was changed"), is not invited to retry without its
``Idempotency-Key``, a retry under the key replays the committed reply, and the audit does not
record as failed what was done.

The database is reached through the fault proxy of ``make faults`` (``bench/proxy.py``), told
to drop the connection right after forwarding a ``COMMIT`` (PostgreSQL only: SQLite is a local
file, whose COMMIT cannot be lost this way).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import psycopg
import pytest
import sqlalchemy as sa

from api.core.settings import Settings
from api.http.problems import database_problem
from bench.common import via
from bench.faults import ProxyControl
from models import AgencyKind, AuditEvent, Referral
from tests.conftest import assert_problem
from tests.test_idempotency import referral_body


@pytest.fixture
async def proxy(backend, database_url) -> AsyncIterator[ProxyControl]:
    if backend.name != "postgresql":
        pytest.skip("a COMMIT lost on the way back needs a network between the service and its database")
    ctl = await ProxyControl.start("127.0.0.1:5432")
    try:
        yield ctl
    finally:
        await ctl.close()


@pytest.fixture
def settings(database_url: str, proxy: ProxyControl) -> Settings:
    return Settings(database_url=via(database_url, proxy.port), mode="development", db_pool_size=4)


async def entries_of(db, request_id: str) -> list[tuple[str, dict]]:
    async with db.sessionmaker() as s:
        rows = (await s.execute(sa.select(AuditEvent.outcome, AuditEvent.body)
                                .where(AuditEvent.request_id == request_id))).all()
    return [(o, orjson.loads(b)) for o, b in rows]


async def referrals_noted(db, note: str) -> list[str]:
    async with db.read() as conn:
        return [str(i) for i in (await conn.execute(sa.select(Referral.id).where(Referral.note == note))).scalars()]


@pytest.fixture
async def sender(make_party):
    await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond", kind=AgencyKind.police)
    return await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                            kind=AgencyKind.migrant_protection)


async def settled(db) -> None:
    """Wait until no other backend of the test's database is still at work: the COMMIT whose
    answer was cut reached PostgreSQL, but it may still be committing (its WAL flush) when the
    service has already answered, and a read made at once would not see what it wrote yet."""
    async with db.read() as conn:
        for _ in range(200):
            busy = (await conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'"))).scalar()
            if not busy:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("a backend of the test's database is still at work after 10 s")


async def lost_commit(proxy: ProxyControl, client, db, path: str, body: dict, headers: dict):
    """The request, with the answer to its COMMIT lost (every COMMIT while it runs); returns
    once PostgreSQL is done with that COMMIT."""
    assert (await proxy.cmd("mode cut 1")).get("ok")
    try:
        return await client.post(path, json=body, headers=headers)
    finally:
        stats = await proxy.cmd("mode pass")
        assert stats.get("cuts") == 1, stats
        await settled(db)


async def test_a_lost_commit_is_reported_as_unknown_and_a_keyed_retry_replays_it(proxy, client, db, sender):
    body = {**referral_body(), "note": "lost commit, keyed"}
    headers = await sender.headers(**{"Idempotency-Key": "lost-commit-1"})
    r = await lost_commit(proxy, client, db, "/v1/referrals", body, headers)
    problem = assert_problem(r, 503, "/problems/outcome-unknown")
    assert r.headers["retry-after"]
    # not "nothing was changed": the client is told to retry only under its key, or to read first
    assert "nothing was changed" not in problem["detail"]
    assert "Idempotency-Key" in problem["detail"] and "read" in problem["detail"]
    stored = await referrals_noted(db, body["note"])
    assert len(stored) == 1  # it was committed

    # the audit has the request as done (its own entry, committed with it), not as failed
    first = await entries_of(db, r.headers["x-request-id"])
    assert [o for o, _ in first] == ["allowed"], first

    again = await client.post("/v1/referrals", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == stored[0]
    assert await referrals_noted(db, body["note"]) == stored  # not twice


async def test_a_lost_commit_of_an_unkeyed_move_is_unknown_and_a_read_tells_the_truth(proxy, client, db, sender,
                                                                                     make_party):
    created = await client.post("/v1/referrals", json={**referral_body(), "note": "lost commit, move"},
                                headers=await sender.headers())
    assert created.status_code == 201, created.text
    rid, etag = created.json()["id"], created.headers["etag"]
    police = await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond",
                              kind=AgencyKind.police)
    headers = await police.headers(**{"If-Match": etag})
    r = await lost_commit(proxy, client, db, f"/v1/referrals/{rid}/transitions", {"action": "receive"}, headers)
    problem = assert_problem(r, 503, "/problems/outcome-unknown")
    assert "nothing was changed" not in problem["detail"]
    assert [o for o, _ in await entries_of(db, r.headers["x-request-id"])] == ["allowed"]

    # the read the client is told to make shows the move was made; the same move again is refused
    # by its If-Match (412), never made twice
    read = await client.get(f"/v1/referrals/{rid}", headers=await police.headers())
    assert read.status_code == 200 and read.json()["status"] == "received"
    retried = await client.post(f"/v1/referrals/{rid}/transitions", json={"action": "receive"}, headers=headers)
    assert_problem(retried, 412)


async def test_a_read_whose_commit_is_lost_is_told_to_retry(proxy, client, db, sender):
    """A read changes nothing of the caller's: its lost COMMIT (only its audit entry is in
    doubt) is unknown too, and the caller is told it may simply retry; not recorded as failed."""
    created = await client.post("/v1/referrals", json={**referral_body(), "note": "lost commit, read"},
                                headers=await sender.headers())
    assert created.status_code == 201, created.text
    headers = await sender.headers()
    assert (await proxy.cmd("mode cut 1")).get("ok")
    try:
        r = await client.get(f"/v1/referrals/{created.json()['id']}", headers=headers)
    finally:
        assert (await proxy.cmd("mode pass")).get("cuts") == 1
        await settled(db)
    problem = assert_problem(r, 503, "/problems/outcome-unknown")
    assert "retry it" in problem["detail"] and r.headers["retry-after"]
    assert "failed" not in [o for o, _ in await entries_of(db, r.headers["x-request-id"])]


async def test_a_connection_lost_before_the_commit_is_not_unknown(proxy, client, db, sender):
    """Only a COMMIT whose answer was lost is unknown: a connection lost before the COMMIT
    leaves nothing (the server rolls back), and the caller is told so."""
    body = {**referral_body(), "note": "lost before commit"}
    headers = await sender.headers()
    assert (await proxy.cmd("mode refuse")).get("ok")
    try:
        r = await client.post("/v1/referrals", json=body, headers=headers)
    finally:
        assert (await proxy.cmd("mode pass")).get("ok")
    problem = assert_problem(r, 503, "/problems/unavailable")
    assert "nothing was changed" in problem["detail"]
    assert await referrals_noted(db, body["note"]) == []


def test_the_drivers_own_connection_errors_are_503s_that_say_nothing_changed():
    """Where the service uses the driver's connection directly (the chain walk's server-side
    cursor) a lost connection raises the driver's error, not SQLAlchemy's: it is the same 503
    (reads change nothing), never a 500."""
    for exc in (psycopg.OperationalError("consuming input failed"), psycopg.InterfaceError("the connection is lost")):
        problem = database_problem(exc)
        assert problem is not None and (problem.status, problem.slug) == (503, "unavailable")
        assert problem.headers["Retry-After"] and "nothing was changed" in problem.detail
    assert database_problem(ValueError("not the database's")) is None


def test_a_deadlock_or_serialisation_failure_is_busy_not_an_outage():
    """PostgreSQL rolled the transaction back because another one held what it needed: the
    database is there, so the reply is 503 ``busy`` (retry shortly, nothing was changed), not
    "the database is not reachable"."""
    from psycopg import errors as pg_errors
    from sqlalchemy import exc as sa_exc

    for orig in (pg_errors.DeadlockDetected("deadlock detected"), pg_errors.SerializationFailure("could not serialize")):
        problem = database_problem(sa_exc.OperationalError("UPDATE …", {}, orig))
        assert problem is not None and (problem.status, problem.slug) == (503, "busy"), problem
        assert problem.headers["Retry-After"] and "nothing was changed" in problem.detail
