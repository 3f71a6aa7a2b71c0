"""Database engine and sessions.

SQLite (the embedded default) runs every transaction as ``BEGIN IMMEDIATE``: every request
writes at least its audit event, so taking the write lock up front avoids the
``SQLITE_BUSY`` that upgrading a read transaction would hit. PostgreSQL runs at READ COMMITTED;
the chain heads (audit, events) are the rows writers serialise on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import CursorResult, ExceptionContext
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.settings import Settings


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``sqlite://`` URLs and pick the async drivers."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The synchronous twin of a database URL (Alembic and the benchmark use it)."""
    u = make_url(normalise_url(url))
    if u.drivername == "sqlite+aiosqlite":
        u = u.set(drivername="sqlite")
    return u.render_as_string(hide_password=False)


def make_engine(settings: Settings, **kw: Any) -> AsyncEngine:
    """The engine. Its errors never carry what a statement was given: ``hide_parameters``
    keeps the parameters out of SQLAlchemy's messages, and :func:`_redact_driver_message` keeps
    the database's own ``DETAIL`` (``Failing row contains (…)``, ``Key (…)=(…)``) out of the
    driver's, so a failed write of a victim's record cannot put the record into a log. The
    loggers that would write statements with their parameters (aiosqlite's, at DEBUG) or result
    rows (SQLAlchemy's engine, at DEBUG) are held at WARNING whatever the service's log level
    (``echo=True`` on an engine still works for a developer who asks for it)."""
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    url = normalise_url(settings.database_url)
    kw.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kw)
        _sqlite_setup(engine)
    else:
        kw.setdefault("pool_size", settings.db_pool_size)
        kw.setdefault("max_overflow", 0)
        kw.setdefault("pool_timeout", 30)
        kw.setdefault("pool_pre_ping", True)
        engine = create_async_engine(url, **kw)
    event.listen(engine.sync_engine, "handle_error", _redact_driver_message)
    return engine


_CHATTY_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool")
_QUOTED_TAIL = re.compile(r'(: )".*"$')


def redacted(message: str) -> str:
    """The first line of a database error, without a value it quotes at its end (``invalid
    input syntax for type uuid: "…"``); the lines after it (``DETAIL``, ``HINT``) hold row and
    key values and are dropped."""
    first = message.split("\n", 1)[0]
    return _QUOTED_TAIL.sub(r'\1"…"', first)


def _redact_driver_message(context: ExceptionContext) -> None:
    """``handle_error``: rewrite the messages of the driver's exception and of SQLAlchemy's
    wrapper in place (their classes, SQLSTATE and ``diag`` stay, so callers that catch an
    ``IntegrityError`` are unaffected)."""
    for exc in (context.original_exception, context.sqlalchemy_exception):
        if exc is None:
            continue
        args = exc.args
        if args and isinstance(args[0], str):
            try:
                exc.args = (redacted(args[0]), *args[1:])
            except (AttributeError, TypeError):  # pragma: no cover - an exception that will not be rewritten
                pass


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only work (key loading, chain verification) must not take the write lock: it
        # may run while a request's own transaction holds it.
        readonly = conn.get_execution_options().get("sinergi_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session:
            async with session.begin():
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading only (on SQLite it does not take the write lock)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sinergi_readonly=True)
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


_PSYCOPG = PGDialect_psycopg()


@lru_cache(maxsize=256)
def _driver_sql(sql: str) -> str:
    """A ``text()`` statement as psycopg takes it (``:name`` -> ``%(name)s``, ``%`` escaped)."""
    return str(sa.text(sql).compile(dialect=_PSYCOPG))


async def execute_text(session: AsyncSession, stmt: sa.TextClause | str, params: dict[str, Any]) -> CursorResult[Any]:
    """``session.execute(text(...), params)`` on PostgreSQL without SQLAlchemy's per-call
    statement handling (compiled once, handed to psycopg as it is): the hot statements of the
    batch push. Same connection and transaction as the session's; like ``session.execute`` of a
    ``text()`` it does no autoflush and no type processing of parameters or results."""
    sql = stmt if isinstance(stmt, str) else stmt.text
    conn = await session.connection()
    return await conn.exec_driver_sql(_driver_sql(sql), params)
