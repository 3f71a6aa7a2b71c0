"""Small typed bridges between SQLModel's classes and SQLAlchemy Core.

SQLModel declares a table's columns as plain Python attributes (``EventHead.pos: int``), so a
type checker sees ``EventHead.pos + 1`` as an ``int`` and ``Model.__table__`` as missing. These
helpers say what the objects are at run time, once, instead of a ``type: ignore`` at every
statement.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Result
from sqlmodel.ext.asyncio.session import AsyncSession


def table_of(model: type[Any]) -> sa.Table:
    """The ``Table`` of a SQLModel table class."""
    return cast(sa.Table, model.__table__)


def dialect_of(session: AsyncSession) -> str:
    """``"postgresql"`` or ``"sqlite"``: the dialect of the engine ``session`` is bound to."""
    bind = session.bind
    if bind is None:  # pragma: no cover - every session of the service is made bound
        raise RuntimeError("the session is not bound to an engine")
    return bind.dialect.name


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (``execute`` of DML returns a ``CursorResult``)."""
    return cast(CursorResult[Any], result).rowcount or 0


def database_now(session: AsyncSession, plus: timedelta = timedelta(0)) -> Any:
    """The database's time now (``+ plus``), as an SQL expression, for times that several
    server processes compare (an idempotency key's expiry): on PostgreSQL ``CURRENT_TIMESTAMP``
    (the transaction's start), on SQLite the time in the form its timestamp columns are stored
    in (UTC, microseconds), so that the two compare."""
    if dialect_of(session) == "postgresql":
        now = sa.func.current_timestamp()
        return now + plus if plus else now
    return sa.func.strftime("%Y-%m-%d %H:%M:%f000", "now", f"+{int(plus.total_seconds())} seconds")
