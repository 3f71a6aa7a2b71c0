"""Chain verification reads PostgreSQL in batches, the columns as text, checked in a worker
thread: it must say exactly what the entry-by-entry walk over SQLAlchemy's typed rows says."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from api.core import audit as service
from api.core.db import sync_url
from models import GENESIS_HASH
from tests.test_audit_chain import as_attacker, auditor, busy_chain  # noqa: F401 (fixtures)


async def reference(db, chain: str) -> service.VerifyResult:
    """The entry-by-entry walk over typed rows (the path SQLite takes)."""
    head_seq, head_hash = await service.head(db, chain)
    walker = service._Walker(chain, None)
    async with db.read() as conn:
        async for row in service._stream_rows(conn, chain, 1, head_seq):
            if not walker.check(row):
                break
    bad = walker.bad
    if bad is None and (head_seq != walker.expected_seq - 1 or head_hash != walker.prev_hash):
        bad = (walker.expected_seq, f"the chain ends at {walker.expected_seq - 1} but its head is at {head_seq}")
    return service.VerifyResult(chain, bad is None, walker.checked, head_seq, head_hash,
                                bad[0] if bad else None, bad[1] if bad else None)


TAMPERS = {
    "none": None,
    "body": "UPDATE audit_event SET body = replace(body, '\"allowed\"', '\"denied\"') WHERE chain = '61' AND seq = 5",
    "action": "UPDATE audit_event SET action = 'healthz' WHERE chain = '61' AND seq = 6",
    "occurred_at": "UPDATE audit_event SET occurred_at = occurred_at + interval '1 microsecond' WHERE chain = '61' AND seq = 4",
    "id": "UPDATE audit_event SET id = '00000000-0000-0000-0000-000000000001' WHERE chain = '61' AND seq = 3",
    "request_id": "UPDATE audit_event SET request_id = NULL WHERE chain = '61' AND seq = 7",
    "deleted": "DELETE FROM audit_event WHERE chain = '61' AND seq = 5",
    "prev_hash": "UPDATE audit_event SET prev_hash = hash WHERE chain = '61' AND seq = 6",
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
@pytest.mark.parametrize("batch", [1, 2, 3, 10_000])
async def test_batched_walk_says_what_the_entry_walk_says(client, db, busy_chain, database_url, monkeypatch,  # noqa: F811
                                                          tamper, batch):
    if db.dialect != "postgresql":
        pytest.skip("the batched walk is PostgreSQL's")
    monkeypatch.setattr(service, "_VERIFY_BATCH", batch)
    if TAMPERS[tamper]:
        with as_attacker(database_url) as c:
            c.execute(sa.text(TAMPERS[tamper]))
    got = await service.verify(db, "61")
    assert got == await reference(db, "61")
    assert got.ok is (tamper == "none")
    assert got.checked >= 1


async def test_an_empty_chain(db):
    got = await service.verify(db, "99")
    assert got == service.VerifyResult("99", True, 0, 0, GENESIS_HASH, None, None)


def test_occurred_at_as_text_is_what_iso_writes(database_url):
    """The text PostgreSQL gives for ``occurred_at`` is ``_iso`` of the value SQLAlchemy gives,
    down to the microsecond and for years of fewer than four digits."""
    eng = sa.create_engine(sync_url(database_url))
    if eng.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    expr = service._PG_VERIFY_SQL.split("id::text,")[1].split("client_id")[0].strip().rstrip(",")
    times = ["2026-01-01 00:00:00+00", "2026-11-30 23:59:59.999999+07", "1999-12-31 23:00:00.5-05",
             "0999-03-04 05:06:07.000008+00", "0009-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00",
             "2024-02-29 12:00:00.000001+00"]
    with eng.connect() as c:
        c.execute(sa.text("CREATE TEMP TABLE t (occurred_at timestamptz)"))
        for t in times:
            c.execute(sa.text("INSERT INTO t VALUES (CAST(:t AS timestamptz))"), {"t": t})
        rows = c.execute(sa.text(f"SELECT occurred_at, {expr} FROM t")).all()
        out_of_range = c.execute(sa.text(
            f"SELECT {expr} FROM (VALUES (CAST('infinity' AS timestamptz)), "
            f"(CAST('0044-03-15 00:00:00+00 BC' AS timestamptz))) AS v (occurred_at)")).scalars().all()
    eng.dispose()
    from models.base import UTCDateTime

    typed = UTCDateTime()
    assert len(rows) == len(times)
    for value, text in rows:
        assert text == service._iso(typed.process_result_value(value, eng.dialect))
    assert out_of_range == [None, None]
