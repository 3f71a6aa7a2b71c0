"""Every write goes through a unit of work, so it cannot lose its audit entries silently."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from api.core import audit, outbox
from api.core.db import Database
from api.core.unit import NoUnit, operator_unit, unit_of
from models import AuditEvent, AuditSubject, Event

API = Path(__file__).resolve().parents[1] / "api"

# The modules that open a session: the unit itself, the request's unit (the HTTP session
# dependency), and the audit failure writer, which appends its one entry explicitly after the
# request's unit rolled back.
OPENS_SESSIONS = {"core/unit.py", "http/session.py", "core/audit.py"}


async def test_a_plain_session_is_not_a_unit(db: Database) -> None:
    async with db.sessionmaker() as session:
        with pytest.raises(NoUnit):
            unit_of(session)
        with pytest.raises(NoUnit):
            audit.record(session, "returnee.read", resource_type="returnee", resource_id="x")
        with pytest.raises(NoUnit):
            outbox.emit(session, "returnee.created", {"id": "x"}, region="61.07")
    async with operator_unit(db, "test") as session:
        assert unit_of(session).session is session


def test_the_database_offers_no_transaction_of_its_own() -> None:
    # A session in a transaction that is not a unit: a way to write that leaves no audit entry.
    assert not hasattr(Database, "transaction")


def _opens_a_session(node: ast.AST) -> bool:
    """``….sessionmaker()``, ``AsyncSession(…)``, ``….engine.begin()``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in ("AsyncSession", "Session")
    if isinstance(func, ast.Attribute):
        if func.attr == "sessionmaker":
            return True
        owner = func.value
        engine = (isinstance(owner, ast.Attribute) and owner.attr == "engine") or \
            (isinstance(owner, ast.Name) and owner.id == "engine")
        return func.attr == "begin" and engine
    return False


def test_sessions_are_opened_only_by_units() -> None:
    opened = sorted(
        f"{path.relative_to(API).as_posix()}:{node.lineno}"
        for path in API.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if _opens_a_session(node)
    )
    assert {o.split(":")[0] for o in opened} == OPENS_SESSIONS, opened


def test_the_session_check_sees_a_violation() -> None:
    source = "async def f(db):\n    async with db.sessionmaker() as s, s.begin():\n        pass\n" \
             "async def g(db):\n    async with db.engine.begin() as c:\n        pass\n"
    assert sum(_opens_a_session(n) for n in ast.walk(ast.parse(source))) == 2


async def test_a_units_events_of_two_feeds_are_committed_with_it_in_order(db: Database) -> None:
    """A unit with one audit entry and events of two provinces' feeds, one of which has no
    head yet (its first event makes it): each feed numbers its events from where it was (the
    new one from 1), in the order they were emitted, and the unit's entry is on the chain with
    its subjects."""
    async with operator_unit(db, "test") as session:  # the Kalbar feed has a head after this
        outbox.emit(session, "notice.created", {"n": 0}, region="61.07")
    async with operator_unit(db, "test") as session:
        for n in (1, 2):
            outbox.emit(session, "notice.created", {"n": n}, region="61.07")
        outbox.emit(session, "notice.created", {"n": 3}, region="64.71")  # Kalimantan Timur: a new feed
        outbox.emit(session, "notice.created", {"n": 4}, region="61.01")
        audit.record(session, "test.events", resource_type="notice", resource_id="n-1")
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(Event.key, Event.pos, Event.data).order_by(Event.key, Event.pos))).all()
        feeds = [(k, p, orjson.loads(d)["n"]) for k, p, d in rows]
        entry = (await conn.execute(sa.select(AuditEvent.id).where(AuditEvent.action == "test.events"))).scalar_one()
        subjects = (await conn.execute(sa.select(AuditSubject.resource_id).where(AuditSubject.event_id == entry))).all()
    assert feeds == [("61", 1, 0), ("61", 2, 1), ("61", 3, 2), ("61", 4, 4), ("64", 1, 3)]
    assert [s[0] for s in subjects] == ["n-1"]
    assert (await audit.verify(db, "61")).ok


async def test_a_unit_without_audit_entries_sends_no_append(db: Database, backend, monkeypatch) -> None:
    """A unit that recorded no audit entry (an operator's unit that only emits an event, or one
    that wrote nothing) commits without calling the chain's append: before, each made a round
    trip to the append function with nothing to append."""
    if backend.name != "postgresql":
        pytest.skip("the append function is PostgreSQL's")
    import psycopg

    sent: list[str] = []
    real = psycopg.AsyncCursor.execute

    async def execute(self: object, query: object, *args: object, **kwargs: object) -> object:  # a spy
        sent.append(str(query))
        return await real(self, query, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute)
    async with operator_unit(db, "test") as session:
        outbox.emit(session, "notice.created", {"n": 1}, region="61.07")
    async with operator_unit(db, "test"):
        pass
    assert not [q for q in sent if "sinergi_audit_append" in q]
    assert [q for q in sent if "INSERT INTO event " in q], "the event was written"
    async with operator_unit(db, "test") as session:
        audit.record(session, "test.entry")
    assert [q for q in sent if "sinergi_audit_append" in q], "a unit with an entry appends it"


async def test_a_write_for_the_commit_is_refused_where_there_is_no_last_message(db: Database, backend) -> None:
    """On SQLite a unit has no last message: a write a service would send with the COMMIT is
    refused at once instead of being dropped at the commit."""
    if backend.name != "sqlite":
        pytest.skip("PostgreSQL sends such writes with the COMMIT (tests/test_changes.py)")
    with pytest.raises(ValueError, match="PostgreSQL"):
        async with operator_unit(db, "test") as session:
            unit_of(session).write_at_commit("INSERT INTO change_head (key, pos) VALUES (:key, 0)", {"key": "x"})
