"""Every write goes through a unit of work, so it cannot lose its audit entries silently."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from api.core import audit, outbox
from api.core.db import Database
from api.core.unit import NoUnit, operator_unit, unit_of

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
