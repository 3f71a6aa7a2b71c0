"""Database engine and sessions.

SQLite (the embedded default) runs every writing transaction as ``BEGIN IMMEDIATE`` (a
request that only reads begins deferred and writes its audit entry apart: api/core/unit.py): every request
writes at least its audit event, so taking the write lock up front avoids the
``SQLITE_BUSY`` that upgrading a read transaction would hit (``SQLITE_BUSY_SNAPSHOT``: a
deferred transaction that has read cannot start writing once another connection has committed
since, and no busy timeout helps; the request would have to be replayed from the start).
PostgreSQL runs at READ COMMITTED; the chain heads (audit, events) are the rows writers
serialise on.

Two ways to read without holding SQLite's write lock: :meth:`Database.read` (a connection of
its own, plain ``BEGIN``: in WAL mode a reader blocks no writer), and, for a request that does
a long read after authenticating, :func:`end_read_transaction` (end the request's transaction
before the long read, so neither its lock nor its pooled connection is held during it).
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
from api.core.sql import dialect_of


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
        busy = settings.sqlite_busy_timeout
        engine = create_async_engine(url, connect_args={"timeout": busy}, **kw)
        _sqlite_setup(engine, int(busy * 1000))
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


def _sqlite_setup(engine: AsyncEngine, busy_ms: int = 30000) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only work (key loading, chain verification) must not take the write lock: it
        # may run while a request's own transaction holds it.
        readonly = conn.get_execution_options().get("sinergi_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one process.

    It deliberately offers no "session in a transaction" of its own: every write goes through
    a unit of work (:mod:`api.core.unit`), which writes its audit entries and events with it.
    A bare transaction would be a way to write that leaves no audit entry and raises nothing.
    """

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
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading only (on SQLite it does not take the write lock)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sinergi_readonly=True)
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


class WroteBeforeRelease(RuntimeError):
    """:func:`end_read_transaction` on a transaction that has written: that would commit part
    of a request apart from the rest."""


async def end_read_transaction(session: AsyncSession) -> None:
    """End ``session``'s transaction, which has only read, and give its connection back.

    For a request that reads a little through its session (authentication) and then reads a
    lot on a connection of its own (:meth:`Database.read`: the audit chain walk, a
    checkpoint). Without it, on SQLite the session's ``BEGIN IMMEDIATE`` would hold the
    database's one write lock for the whole walk (every writer waits), and on both databases
    the walk would take a second pooled connection while the session keeps its first (enough
    such requests at once and the pool deadlocks on itself). After it the session is usable as
    before: its next statement begins a new transaction, in which the unit writes what the
    request recorded when it ends (on SQLite taking the write lock only for that). Nothing
    read before is relied on after: the long read sees the database as it is then.

    Raises :class:`WroteBeforeRelease` if the transaction has changed anything: ORM changes
    pending, or, on PostgreSQL, a transaction id assigned (the server's own proof that some
    statement wrote, flushed or not). On SQLite only the first check applies; the test suite
    runs every route on both databases.
    """
    if not session.in_transaction():
        return
    if session.new or session.dirty or session.deleted:
        raise WroteBeforeRelease("the session has pending changes")
    if dialect_of(session) == "postgresql":
        xid = (await session.execute(sa.text("SELECT txid_current_if_assigned()"))).scalar()
        if xid is not None:
            raise WroteBeforeRelease("the transaction has written")
    await session.commit()  # it only read: this ends it and releases the connection (and lock)


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
