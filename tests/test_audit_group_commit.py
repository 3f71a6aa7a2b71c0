"""Audited reads that commit at the same moment have their entries appended together, in one
transaction (PostgreSQL, api.core.audit.commit_read): every read still answers only once its
entry is in the chain, the chain verifies, and when that transaction fails every read whose
entry it held fails with it, answered 503 without its data and recorded as failed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from api.core import audit
from api.core.db import sync_url
from api.core.unit import operator_unit
from models import AgencyKind
from tests.conftest import assert_problem
from tests.test_referrals import create, world  # noqa: F401  (the fixture)


@pytest.fixture(autouse=True)
def _postgresql_only(backend):
    if backend.name != "postgresql":
        pytest.skip("the group commit is PostgreSQL's (on SQLite a read writes its entry in a write transaction of its own)")


@contextmanager
def head_held(database_url: str) -> Iterator[sa.Connection]:
    """Another transaction holding the province's chain head, as a long append would."""
    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT 1 FROM audit_head WHERE chain = '61' FOR UPDATE"))
            yield conn
    finally:
        eng.dispose()


def appends_waiting(conn: sa.Connection) -> list[int]:
    """The backends whose chain append waits for a lock, the longest waiting first (looked at
    afresh: within a transaction PostgreSQL shows the activity of its first look)."""
    conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
    return list(conn.execute(sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND query LIKE 'SELECT sinergi_audit_append%' ORDER BY query_start")).scalars())


async def until(done: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if done():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"not reached in 10 s: {what}")


def entries_of(database_url: str, request_ids: list[str]) -> list[dict]:
    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT request_id, outcome, xmin::text AS txn, body FROM audit_event WHERE request_id = ANY(:ids)"),
                {"ids": request_ids})]
    finally:
        eng.dispose()


@pytest.fixture
async def auditor(make_party):
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


@dataclass
class Read:
    """An audited read of one referral by its receiver: ``client.get(url, headers=headers)``."""

    ref: dict
    url: str
    headers: dict[str, str]


@pytest.fixture
async def read(client, world) -> Read:  # noqa: F811
    ref = await create(client, world.sender)
    one = Read(ref, f"/v1/referrals/{ref['id']}", await world.receiver.headers())
    assert (await client.get(one.url, headers=one.headers)).status_code == 200  # the append prepared
    return one


async def reads_waiting(client, read: Read, holder: sa.Connection, n: int) -> list[asyncio.Task]:
    """``n`` reads started: the first's append waits for the held head, the others for it."""
    tasks = [asyncio.create_task(client.get(read.url, headers=read.headers)) for _ in range(n)]
    await until(lambda: len(appends_waiting(holder)) == 1 and audit.waiting_reads() == n - 1,
                f"one append waiting for the head, {n - 1} reads waiting for it")
    return tasks


async def assert_chain_verifies(client, auditor) -> None:
    verified = await client.get("/v1/audit/verify", headers=await auditor.headers())
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text


async def test_reads_committing_together_are_appended_in_one_transaction(client, read, auditor, database_url):
    with head_held(database_url) as holder:
        reads = await reads_waiting(client, read, holder, 6)
        assert not any(r.done() for r in reads)  # no reply before its entry is in the chain
    replies = await asyncio.gather(*reads)
    assert [r.status_code for r in replies] == [200] * 6
    assert all(r.json()["id"] == read.ref["id"] and {"version", "returnee_id"} <= r.json().keys() for r in replies)
    ids = [r.headers["x-request-id"] for r in replies]
    found = entries_of(database_url, ids)
    assert sorted(e["request_id"] for e in found) == sorted(ids)  # one entry each, none lost or doubled
    assert {e["outcome"] for e in found} == {"allowed"}
    assert len({e["txn"] for e in found}) == 2  # the first read's own, and the five appended together
    assert audit.waiting_reads() == 0
    await assert_chain_verifies(client, auditor)


async def test_a_failed_group_fails_every_read_in_it(client, read, auditor, database_url):
    with head_held(database_url) as holder:
        reads = await reads_waiting(client, read, holder, 6)
        first = appends_waiting(holder)[0]
        holder.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": first})
        # the next read appends the five waiting entries together, and waits for the head too
        await until(lambda: [p for p in appends_waiting(holder) if p != first] != [] and audit.waiting_reads() == 0,
                    "the five entries' append waiting for the head")
        group = next(p for p in appends_waiting(holder) if p != first)
        holder.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": group})
    replies = await asyncio.gather(*reads)
    for r in replies:  # no reply carries the referral: none of the reads is on the chain
        body = assert_problem(r, 503)
        assert not {"id", "version", "returnee_id", "sender_agency"} & set(body), body
    ids = [r.headers["x-request-id"] for r in replies]
    found = entries_of(database_url, ids)
    assert sorted(e["request_id"] for e in found) == sorted(ids)  # each recorded once: as failed
    assert {e["outcome"] for e in found} == {"failed"}
    assert all('"status":503' in e["body"] for e in found)
    after = await client.get(read.url, headers=read.headers)
    assert after.status_code == 200 and after.json()["id"] == read.ref["id"]
    await assert_chain_verifies(client, auditor)


async def test_a_unit_that_wrote_commits_its_entry_in_its_own_transaction(client, read, db, database_url):
    """Only a unit that wrote nothing waits for another's append: one that wrote (here while
    reads are waiting) keeps its write and its entry in one transaction."""
    with head_held(database_url) as holder:
        reads = await reads_waiting(client, read, holder, 3)

        async def write() -> None:
            async with operator_unit(db, "test") as session:
                await session.execute(sa.text("UPDATE agency SET name = name || '' WHERE code = 'POLRES-BENGKAYANG'"))
                audit.record(session, "test.write")

        writing = asyncio.create_task(write())
        await until(lambda: len(appends_waiting(holder)) == 2, "the write's append waiting for the head too")
        assert audit.waiting_reads() == 2
    await writing
    assert [r.status_code for r in await asyncio.gather(*reads)] == [200] * 3
    eng = sa.create_engine(sync_url(database_url))
    try:
        with eng.connect() as conn:
            row = conn.execute(sa.text("SELECT xmin::text FROM agency WHERE code = 'POLRES-BENGKAYANG'")).scalar()
            entry = conn.execute(sa.text("SELECT xmin::text FROM audit_event WHERE action = 'test.write'")).scalar()
    finally:
        eng.dispose()
    assert row == entry


async def test_a_read_gone_while_waiting_leaves_the_others_their_group(client, read, database_url):
    """A request that ends (its client gone) while its entry waits takes the entry with it; the
    reads waiting beside it are appended and answered as before."""
    with head_held(database_url) as holder:
        kept = await reads_waiting(client, read, holder, 3)
        gone = asyncio.create_task(client.get(read.url, headers=read.headers))  # a read that waits, then goes
        await until(lambda: audit.waiting_reads() == 3, "the fourth read waiting")
        gone.cancel()
        await until(lambda: gone.done() and audit.waiting_reads() == 2, "the gone read's entry taken back")
    replies = await asyncio.gather(*kept)
    assert [r.status_code for r in replies] == [200] * 3
    assert gone.cancelled()
    found = entries_of(database_url, [r.headers["x-request-id"] for r in replies])
    assert len(found) == 3 and {e["outcome"] for e in found} == {"allowed"}
    assert audit.waiting_reads() == 0
