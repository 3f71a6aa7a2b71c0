"""Syncing without missing anything (``sort=changes``), and reads on SQLite that do not queue
behind writers.

``updated_at`` is the clock when a writing transaction began; a partner that syncs by "the
largest ``updated_at`` I have seen" misses a change whose transaction began first and committed
last. The change positions are given at commit, in commit order, so a partner that keeps the
last ``next_cursor`` of ``sort=changes`` sees every change committed after it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from api.core.db import normalise_url
from api.core.settings import Settings
from models import Returnee
from tests import test_referrals
from tests.conftest import assert_problem
from tests.test_referrals import create, move
from tests.test_returnees import WRITE, bp3mi, push, rec

world = test_referrals.world  # the referral tests' parties, as a fixture here too


async def _sync(client, headers, cursor: str | None, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every page of ``sort=changes`` from ``cursor``; the items and where the next sync starts."""
    items: list[dict[str, Any]] = []
    while True:
        q = {"sort": "changes", "limit": 2, **params}
        if cursor:
            q["cursor"] = cursor
        r = await client.get("/v1/returnees", params=q, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["next_cursor"], "the sync order always says where to continue"
        items += body["items"]
        cursor = body["next_cursor"]
        if len(body["items"]) < 2:
            return items, cursor


async def test_sync_by_changes_sees_every_change_once_and_in_commit_order(client, make_party):
    party = await bp3mi(make_party)
    h = await party.headers()
    assert (await push(client, party, [rec("S-1"), rec("S-2", nik=None), rec("S-3", nik=None)])).status_code == 200
    first, cursor = await _sync(client, h, None)
    assert sorted(i["source_ref"] for i in first) == ["S-1", "S-2", "S-3"]

    again, cursor = await _sync(client, h, cursor)
    assert again == []  # nothing new; the cursor given still marks the same place

    # a change to an old record and a new one: the next sync has exactly these, in commit order
    assert (await push(client, party, [rec("S-1", full_name="Siti Aminah binti Umar")])).status_code == 200
    assert (await push(client, party, [rec("S-4", nik=None)])).status_code == 200
    later, _ = await _sync(client, h, cursor)
    assert [(i["source_ref"], i["full_name"]) for i in later] == [("S-1", "Siti Aminah binti Umar"),
                                                                  ("S-4", "Siti Aminah")]

    # an unchanged record is not a change
    assert (await push(client, party, [rec("S-4", nik=None)])).json()["results"][0]["status"] == "unchanged"
    assert (await _sync(client, h, cursor))[0] == later


async def test_a_cursor_of_one_order_does_not_open_on_the_other(client, make_party):
    party = await bp3mi(make_party)
    h = await party.headers()
    await push(client, party, [rec("O-1"), rec("O-2", nik=None)])
    by_time = (await client.get("/v1/returnees", params={"limit": 1}, headers=h)).json()["next_cursor"]
    r = await client.get("/v1/returnees", params={"sort": "changes", "cursor": by_time}, headers=h)
    assert_problem(r, 400)


async def test_referrals_sync_by_changes(client, world):
    ids = [(await create(client, world.sender, sender_ref=f"CH-{n}"))["id"] for n in range(3)]
    hs = await world.sender.headers()
    page = (await client.get("/v1/referrals", params={"sort": "changes"}, headers=hs)).json()
    assert [i["id"] for i in page["items"]] == ids and page["next_cursor"]
    cursor = page["next_cursor"]
    empty = (await client.get("/v1/referrals", params={"sort": "changes", "cursor": cursor}, headers=hs)).json()
    assert empty == {"items": [], "next_cursor": empty["next_cursor"]} and empty["next_cursor"]

    # the first one moves: the next sync has it, and only it
    first = (await client.get(f"/v1/referrals/{ids[0]}", headers=hs)).json()
    assert (await move(client, world.receiver, first, "receive")).status_code == 200
    r = await client.get("/v1/referrals", params={"sort": "changes", "cursor": cursor}, headers=hs)
    assert [i["id"] for i in r.json()["items"]] == [ids[0]]


async def test_notices_sync_by_changes(client, make_party, db):
    from tests.returnee_rows import insert_returnees
    from tests.test_notices import _create, _parties

    bp3mi, bengkayang, _ = await _parties(make_party)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 2)
    made = [(await _create(client, bp3mi, "61.07", [i])).json()["id"] for i in ids]
    h = await bengkayang.headers()
    page = (await client.get("/v1/notices", params={"sort": "changes"}, headers=h)).json()
    assert [n["id"] for n in page["items"]] == made  # oldest change first (the default is newest first)
    ack = await client.post(f"/v1/notices/{made[0]}/acknowledge", headers=await bengkayang.headers(**{"If-Match": '"1"'}))
    assert ack.status_code == 200, ack.text
    later = (await client.get("/v1/notices", params={"sort": "changes", "cursor": page["next_cursor"]},
                              headers=h)).json()
    assert [n["id"] for n in later["items"]] == [made[0]] and later["items"][0]["acknowledged_at"]


async def test_a_transaction_that_began_first_and_committed_last_is_not_missed(backend, database_url, client,
                                                                               make_party):
    """Two overlapping batches on PostgreSQL: A begins first (its clock is read), waits on a row
    lock held by the test, B begins later and commits; then A commits. A reader that synced
    between the two commits sees A on its next sync by cursor; by ``updated_since`` (the largest
    ``updated_at`` it had seen) it would not: A's ``updated_at`` is earlier than B's."""
    if backend.name != "postgresql":
        pytest.skip("on SQLite writing transactions do not overlap (one write lock)")
    party = await bp3mi(make_party)
    h = await party.headers()
    assert (await push(client, party, [rec("A-1")])).status_code == 200
    _, cursor = await _sync(client, h, None)

    other = create_async_engine(normalise_url(database_url))
    try:
        async with other.connect() as locker:
            await locker.execute(sa.text("SELECT 1 FROM returnee WHERE source_ref = 'A-1' FOR UPDATE"))
            a = asyncio.create_task(push(client, party, [rec("A-1", full_name="Changed In A")]))
            async with other.connect() as probe:  # until A is waiting for the row lock
                while not (await probe.execute(sa.text(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"))).scalar():
                    await asyncio.sleep(0.01)
            b = await push(client, party, [rec("B-1", nik=None)])
            assert b.status_code == 200
            seen, cursor = await _sync(client, h, cursor)
            assert [i["source_ref"] for i in seen] == ["B-1"]
            latest_seen = max(i["updated_at"] for i in seen)
            assert not a.done()
            await locker.rollback()  # A goes on and commits last
        assert (await a).status_code == 200
    finally:
        await other.dispose()

    by_cursor, _ = await _sync(client, h, cursor)
    assert [(i["source_ref"], i["full_name"]) for i in by_cursor] == [("A-1", "Changed In A")]

    by_time = await client.get("/v1/returnees", params={"updated_since": latest_seen}, headers=h)
    assert "A-1" not in [i["source_ref"] for i in by_time.json()["items"]]  # why updated_since is no sync key
    stored = await client.get(f"/v1/returnees/{by_cursor[0]['id']}", headers=h)
    assert stored.json()["updated_at"] < latest_seen


async def test_a_batch_creating_and_one_updating_records_of_one_person_do_not_deadlock(backend, database_url,
                                                                                      client, make_party):
    """A batch that creates a record takes the returnee list's head at its insert; one that
    only updates records takes it too, before the register's person rows that both write.
    Otherwise: the updater holds the person's register row and waits for the head at its
    commit, the creator holds the head and waits for that row, and PostgreSQL aborts one of them
    (a deadlock). The creator writes its person (the same one) before it waits for the head,
    with a lock the updater's foreign key checks do not wait for. Here the updater is made to
    wait at the row while holding the head (a lock the test holds), the creator for the head,
    then both go on: each batch is answered 200 with its record written."""
    if backend.name != "postgresql":
        pytest.skip("on SQLite writing transactions do not overlap (one write lock)")
    party = await bp3mi(make_party)
    assert (await push(client, party, [rec("P-1")])).status_code == 200

    async def waiting(probe: Any) -> int:
        return (await probe.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar()

    other = create_async_engine(normalise_url(database_url))
    try:
        async with other.connect() as locker, other.connect() as probe:
            await locker.execute(sa.text("SELECT 1 FROM register_person WHERE person_id = "
                                         "(SELECT person_id FROM returnee WHERE source_ref = 'P-1') FOR UPDATE"))
            updater = asyncio.create_task(push(client, party, [rec("P-1", full_name="Siti A.")]))
            while await waiting(probe) < 1:
                await asyncio.sleep(0.01)
            creator = asyncio.create_task(push(client, party, [rec("P-2")]))  # the same NIK: the same person
            while await waiting(probe) < 2:
                await asyncio.sleep(0.01)
            await locker.rollback()
            updated, created = await updater, await creator
    finally:
        await other.dispose()
    assert updated.status_code == 200, updated.text
    assert created.status_code == 200, created.text
    assert [r["status"] for r in updated.json()["results"]] == ["updated"]
    assert [r["status"] for r in created.json()["results"]] == ["created"]


async def test_a_batch_of_new_people_takes_the_head_only_with_its_commit(backend, database_url, client, make_party,
                                                                         db):
    """A batch of new records of new people sends its records with its COMMIT (api.core.unit,
    "the last message"): it holds the returnee list's head only for the database's own time. Here
    the test holds the head; two such batches, each creating the same new ``source_ref``, both
    wait for it (neither holds anything the other needs). Once the head is free, one commits; the
    other's record meets the first's unique key at its COMMIT: a 409 problem, nothing of it
    written, and its retry is answered."""
    if backend.name != "postgresql":
        pytest.skip("on SQLite writing transactions do not overlap (one write lock)")
    party = await bp3mi(make_party)
    assert (await push(client, party, [rec("FIRST-1", nik=None)])).status_code == 200  # the head exists

    async def waiting(probe: Any) -> int:  # the first waits for the holder, the next for the row (a tuple lock)
        return (await probe.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar()

    other = create_async_engine(normalise_url(database_url))
    try:
        async with other.connect() as locker, other.connect() as probe:
            await locker.execute(sa.text("SELECT 1 FROM change_head WHERE key = 'returnee' FOR UPDATE"))
            first = asyncio.create_task(push(client, party, [rec("SAME-1", nik=None)]))
            second = asyncio.create_task(push(client, party, [rec("SAME-1", nik=None, full_name="Dewi Lestari",
                                                                  birth_date="1991-01-01")]))
            while await waiting(probe) < 2:  # both at their last message, waiting for the head
                assert not first.done() and not second.done()
                await asyncio.sleep(0.01)
            await locker.rollback()
            answers = [await first, await second]
    finally:
        await other.dispose()
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    lost = next(r for r in answers if r.status_code == 409)
    assert_problem(lost, 409, "conflict")
    won = next(r for r in answers if r.status_code == 200)
    assert [x["status"] for x in won.json()["results"]] == ["created"]
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(Returnee.full_name).where(Returnee.source_ref == "SAME-1"))).all()
    assert len(stored) == 1  # the other batch wrote nothing
    retried = await push(client, party, [rec("SAME-1", nik=None, full_name="Dewi Lestari", birth_date="1991-01-01")])
    assert retried.status_code == 200, retried.text


async def test_what_a_batch_of_new_people_writes_after_the_head_goes_in_its_last_message(
        backend, client, make_party, monkeypatch):
    """Every statement a push of new people sends, seen on the way to PostgreSQL: the list's head
    is named only in the last message (one pipeline, one round trip), which holds the register's
    rows, the records, the events and the chain's append and ends with the COMMIT, their
    values as parameters (not in the SQL text, which PostgreSQL's log of a failed statement
    shows). A push with ``notify=true`` (its notices read the records) sends its records before
    the notices."""
    if backend.name != "postgresql":
        pytest.skip("the last message is PostgreSQL's")
    party = await bp3mi(make_party, WRITE + ["notices:write", "notices:read"])
    sent: list[tuple[str, bool]] = []  # (SQL, sent in a pipeline)
    real = psycopg.AsyncCursor.execute

    async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:  # a spy: sends as it was
        sent.append((str(query), self.connection.info.pipeline_status != psycopg.pq.PipelineStatus.OFF))
        return await real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute)
    answered = await push(client, party, [rec("LAST-1", nik=None), rec("LAST-2", nik=None)])
    assert answered.status_code == 200 and [r["status"] for r in answered.json()["results"]] == ["created"] * 2
    begins = max(i for i, (_, piped) in enumerate(sent) if not piped) + 1  # the last message: the last pipeline
    last = [sql for sql, _ in sent[begins:]]
    assert not any("change_head" in sql for sql, _ in sent[:begins])
    # the register's rows first: only this batch knows its new people, so nobody else can hold them
    wanted = ["INSERT INTO register_person", "INSERT INTO change_head", "INSERT INTO event ", "sinergi_audit_append",
              "COMMIT"]
    assert [next(w for w in wanted if w in sql) for sql in last] == wanted
    assert not any("LAST-1" in sql for sql, _ in sent)  # values go as parameters

    sent.clear()
    notified = await push(client, party, [rec("LAST-3", nik=None)], notify="true")
    assert notified.status_code == 200, notified.text
    assert notified.json()["notices"], "the notice was raised for the record"
    heads = [i for i, (sql, _) in enumerate(sent) if "change_head" in sql]
    assert heads and heads[0] < next(i for i, (sql, _) in enumerate(sent) if "INSERT INTO notice" in sql)


# --- SQLite: reads take no write lock; contention is "busy", not an outage ---------------------


def _sqlite_path(database_url: str) -> str:
    return make_url(database_url).database or ""


async def test_sqlite_reads_do_not_wait_for_a_writer(backend, database_url, client, make_party, app):
    """A write transaction holds SQLite's write lock; a list request still reads (before the
    writer commits: it shows the data as it was), and completes once the writer is done."""
    if backend.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    party = await bp3mi(make_party)
    h = await party.headers()
    assert (await push(client, party, [rec("R-1")])).status_code == 200

    read_done = asyncio.Event()

    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM returnee" in statement:
            read_done.set()

    engine = app.state.services.db.engine.sync_engine
    writer = sqlite3.connect(_sqlite_path(database_url), isolation_level=None, check_same_thread=False)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE returnee SET full_name = 'Written Meanwhile'")
        event.listen(engine, "after_cursor_execute", _after)
        try:
            g = asyncio.create_task(client.get("/v1/returnees", headers=h))
            await asyncio.wait_for(read_done.wait(), 20)  # the read ran while the writer held the lock
            writer.execute("COMMIT")
            r = await g
        finally:
            event.remove(engine, "after_cursor_execute", _after)
    finally:
        writer.close()
    assert r.status_code == 200, r.text
    assert [i["full_name"] for i in r.json()["items"]] == ["Siti Aminah"]  # read before the commit


async def test_sqlite_lock_contention_is_busy_not_unreachable(backend, database_url):
    if backend.name != "sqlite":
        pytest.skip("SQLite's write lock")
    import httpx

    settings = Settings(database_url=database_url, mode="development", sqlite_busy_timeout=0.2)
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            made = await make_party_on(app, c)
            h = await made.headers()
            writer = sqlite3.connect(_sqlite_path(database_url), isolation_level=None)
            try:
                writer.execute("BEGIN IMMEDIATE")
                r = await c.post("/v1/returnees/batch", json={"records": [rec("Z-1")]}, headers=h)
                body = assert_problem(r, 503, "/problems/busy")
                assert "retry" in body["detail"].lower() and r.headers["Retry-After"]
                assert "not reachable" not in body["detail"]
            finally:
                writer.execute("ROLLBACK")
                writer.close()
            async with app.state.services.db.read() as conn:
                assert (await conn.execute(sa.select(sa.func.count()).select_from(Returnee))).scalar() == 0


async def make_party_on(app: Any, http: Any):
    from api.agencies import service as agencies
    from api.agencies.schemas import AgencyCreate, ClientCreate
    from api.core.unit import operator_unit
    from models import AgencyKind
    from tests.conftest import Party

    db = app.state.services.db
    async with operator_unit(db, "test") as session:
        await agencies.create_agency(session, AgencyCreate(code="BP3MI-KALBAR", name="BP3MI", kind=AgencyKind.other,
                                                           jurisdiction="61"))
        created = await agencies.create_client(session, "BP3MI-KALBAR", ClientCreate(scopes=["returnees:write"]))
    return Party("BP3MI-KALBAR", "61", created.client_id, created.client_secret, created.scopes, http)
