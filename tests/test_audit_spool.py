"""Calls that fail while the database is unavailable are audited all the same: with the status
they were answered (503, not 500), through the spool (``SINERGI_AUDIT_SPOOL``) while the
database cannot take their entries, and in the chain, verifying, once it is back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api.core import audit
from api.core.db import sync_url
from api.core.settings import Settings
from models import AgencyKind, AuditEvent
from tests.conftest import PG_ADMIN_URL, assert_problem
from tests.live import server_env
from tests.test_idempotency import referral_body


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "audit.spool"


@pytest.fixture
def settings(database_url: str, spool_path: Path) -> Settings:
    return Settings(database_url=database_url, mode="development", db_pool_size=10, sqlite_busy_timeout=0.2,
                    audit_spool=str(spool_path))


@contextmanager
def database_unavailable(backend, database_url: str) -> Iterator[None]:
    """PostgreSQL refuses connections (open ones are ended); SQLite's write lock is held by
    another process past the busy timeout."""
    if backend.name == "sqlite":
        holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    name = make_url(database_url).database
    admin = sa.create_engine(sync_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")

    def allow(yes: bool) -> None:
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(yes).lower()}'))
            if not yes:
                c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})

    try:
        allow(False)
        yield
    finally:
        allow(True)
        admin.dispose()


async def entries_of(db, request_ids: list[str]) -> list[AuditEvent]:
    async with db.sessionmaker() as s:
        return list((await s.execute(sa.select(AuditEvent).where(
            AuditEvent.request_id.in_(request_ids)))).scalars())


async def test_failed_calls_during_an_outage_reach_the_chain_when_the_database_is_back(
        backend, database_url, client, db, make_party, spool_path):
    await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond", kind=AgencyKind.police)
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    headers = await sender.headers()
    expected = "busy" if backend.name == "sqlite" else "unavailable"
    failed = []
    with database_unavailable(backend, database_url):
        for _ in range(3):
            r = await client.post("/v1/referrals", json=referral_body(), headers=headers)
            problem = assert_problem(r, 503, expected)
            assert "nothing was changed" in problem["detail"] and r.headers["retry-after"]
            failed.append(r.headers["x-request-id"])
        # the entries wait on disk, one line each, already fsynced
        assert spool_path.exists() and len(spool_path.read_bytes().splitlines()) == 3
    assert await entries_of(db, failed) == []

    # the database is back: the next call that succeeds brings them into the chain
    for _ in range(40):
        r = await client.get("/v1/referrals", headers=headers)
        assert r.status_code == 200, r.text
        if len(await entries_of(db, failed)) == 3:
            break
        await asyncio.sleep(0.1)
    entries = await entries_of(db, failed)
    assert len(entries) == 3
    for e in entries:
        body = orjson.loads(e.body)
        assert (e.outcome, e.action) == ("failed", "referral.create")
        assert body["detail"]["status"] == 503 and body["detail"]["problem"] == expected
        assert body["detail"]["spooled"] is True
    assert not spool_path.exists() and not list(spool_path.parent.glob("*.draining"))
    result = await audit.verify(db, "61")
    assert result.ok, result

    # a second drain finds nothing to do and writes nothing twice
    assert await audit.drain_spool(db) == 0
    assert len(await entries_of(db, failed)) == 3


async def test_a_spool_drain_that_died_after_committing_writes_nothing_twice(
        backend, database_url, client, db, make_party, spool_path):
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    headers = await sender.headers()
    with database_unavailable(backend, database_url):
        r = await client.post("/v1/referrals", json=referral_body(), headers=headers)
        assert r.status_code == 503
    kept = spool_path.read_bytes()
    assert await audit.drain_spool(db) == 1
    # as if the drain had committed and died before removing its file
    (spool_path.parent / "audit.spool.1.x.draining").write_bytes(kept)
    assert await audit.drain_spool(db) == 0
    assert len(await entries_of(db, [r.headers["x-request-id"]])) == 1
    assert (await audit.verify(db, "61")).ok


def test_the_suites_apps_and_servers_share_no_spool(database_url):
    """Each test that spools gives its own spool; no other app or server of the suite has one.
    `make test` exports the workstation's spool (the Makefile's SINERGI_AUDIT_SPOOL): shared by
    every test, a test's outage entries were drained by another test's server into its own
    database's chain (an e2e test counting its chain's entries found five too many)."""
    assert Settings(database_url=database_url).audit_spool is None
    assert "SINERGI_AUDIT_SPOOL" not in server_env(database_url)
