"""Database engine and sessions.

SQLite (the embedded default) runs every writing transaction as ``BEGIN IMMEDIATE`` (a
request that only reads begins deferred and writes its audit entry apart: api/core/unit.py): every request
writes at least its audit event, so taking the write lock up front avoids the
``SQLITE_BUSY`` that upgrading a read transaction would hit (``SQLITE_BUSY_SNAPSHOT``: a
deferred transaction that has read cannot start writing once another connection has committed
since, and no busy timeout helps; the request would have to be replayed from the start).
PostgreSQL runs at READ COMMITTED; the chain heads (audit, events) are the rows writers
serialise on.

:meth:`Database.read` is a connection of its own for reading only (plain ``BEGIN`` on SQLite:
in WAL mode a reader blocks no writer). A request never takes one while its session holds a
connection: everything a request reads (its keys, the audit chain it verifies) it reads on its
own session, so a request holds one pooled connection at most and the pool cannot deadlock on
itself.

**Every wait is bounded** (the settings ``db_*``; README, "Bounds on waiting for the database"):
a free pooled connection (``db_pool_timeout``), connecting (``db_connect_timeout``), each
statement in PostgreSQL (``statement_timeout``), each reply of PostgreSQL on this side
(:class:`ReplyTimeout`: the statement timeout plus ``db_reply_margin``; a network that drops
everything is noticed even though no TCP error ever comes), a session whose client vanished
mid-transaction (``idle_in_transaction_session_timeout``, which frees its locks), and the TCP
connection itself (keepalives and ``TCP_USER_TIMEOUT`` on both ends). :func:`failure_kind` says
which kind of wait failed; the HTTP layer answers 503 with ``Retry-After`` for each.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg import errors as pg_errors
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import CursorResult, ExceptionContext
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import LRUCache
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

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
        busy = settings.sqlite_busy_timeout
        if ":memory:" not in url and "mode=memory" not in url:  # a file: a queue pool, bounded as PostgreSQL's
            kw.setdefault("pool_size", settings.db_pool_size)
            kw.setdefault("max_overflow", 0)
            kw.setdefault("pool_timeout", settings.db_pool_timeout)
        engine = create_async_engine(url, connect_args={"timeout": busy}, **kw)
        _sqlite_setup(engine, int(busy * 1000))
    else:
        kw.setdefault("pool_size", settings.db_pool_size)
        kw.setdefault("max_overflow", 0)
        kw.setdefault("pool_timeout", settings.db_pool_timeout)
        engine = create_async_engine(url, connect_args=_pg_connect_args(settings, url), **kw)
        _ping_idle_connections(engine, float(settings.db_connect_timeout), settings.db_ping_idle)
        _note_writes(engine)
    event.listen(engine.sync_engine, "handle_error", _redact_driver_message)
    return engine


class ReplyTimeout(psycopg.OperationalError):
    """PostgreSQL did not answer within the bound (``Settings.db_reply_timeout``): the link is
    taken for lost, and the connection is closed (what it was doing is unknown), so the pool
    never hands it out again."""


class _BoundedConnection(psycopg.AsyncConnection):
    """A psycopg connection whose every wait for the server (a statement, a fetch, a commit,
    a ping) ends after ``reply_timeout`` seconds: psycopg waits for ever otherwise, and a
    network that silently drops everything sends no error to notice."""

    reply_timeout: float | None = None
    async def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        bound = self.reply_timeout if timeout is None else timeout
        try:
            return await super().wait(gen, interval, bound)
        except _WAIT_TIMEOUT:
            self.pgconn.finish()
            raise ReplyTimeout(f"no reply from the database within {bound:g} s") from None


_WAIT_TIMEOUT: type[Exception] = getattr(pg_errors, "_WaitTimeout", ReplyTimeout)


def _pg_connect_args(settings: Settings, url: str) -> dict[str, Any]:
    """The bounds of a PostgreSQL connection: connect timeout, TCP keepalives and user timeout
    on this end (libpq); statement, idle-in-transaction and TCP bounds on the server's end
    (session settings in ``options``, after any the URL already gives)."""
    reply = settings.db_reply_timeout
    tcp = settings.db_tcp_user_timeout
    idle, interval = max(1, int(tcp / 3)), max(1, int(tcp / 9))

    async def connect(*args: Any, **kw: Any) -> _BoundedConnection:
        conn = await _BoundedConnection.connect(*args, **kw)
        conn.reply_timeout = reply
        return conn

    server = {
        "statement_timeout": int(settings.db_statement_timeout * 1000),
        "idle_in_transaction_session_timeout": int(settings.db_idle_in_transaction_timeout * 1000),
        "tcp_user_timeout": int(tcp * 1000),
        "tcp_keepalives_idle": idle,
        "tcp_keepalives_interval": interval,
        "tcp_keepalives_count": 3,
    }
    given = make_url(url).query.get("options")
    options = " ".join([*([given] if isinstance(given, str) else list(given or ())),
                        *(f"-c {k}={v}" for k, v in server.items())])
    return {
        "async_creator_fn": connect,
        "connect_timeout": settings.db_connect_timeout,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": 3,
        "tcp_user_timeout": int(tcp * 1000),
        "options": options,
    }


def _ping_idle_connections(engine: AsyncEngine, bound: float, idle: float) -> None:
    """Before the pool hands out a connection that has been idle for more than ``idle``
    seconds, it pings it, waiting no longer than connecting would: a connection the network or
    a restart dropped while it sat in the pool is replaced (SQLAlchemy's ``pool_pre_ping``,
    without the round trip on every checkout of a busy pool). One used within ``idle`` seconds
    is handed out as it is: if it was dropped since, its first statement fails within the
    reply bound, as any statement on a link lost mid-request does."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "connect")
    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", 0.0) <= idle:
            return
        driver = getattr(dbapi_connection, "driver_connection", None)
        saved = driver.reply_timeout if isinstance(driver, _BoundedConnection) else None
        if isinstance(driver, _BoundedConnection):
            driver.reply_timeout = bound if saved is None else min(saved, bound)
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        finally:
            if isinstance(driver, _BoundedConnection):
                driver.reply_timeout = saved
        if not alive:  # the pool discards it and checks out another (a new connection if need be)
            raise sa_exc.DisconnectionError("a pooled connection did not answer its ping")


_READS = re.compile(r"\s*SELECT\b", re.IGNORECASE)
_WROTE = "sinergi_wrote"


def _note_writes(engine: AsyncEngine) -> None:
    """Note on each connection whether its transaction has sent anything but a ``SELECT``
    (:func:`wrote`): a unit that wrote nothing may have its audit entries appended together with
    other such units' (api.core.audit, :func:`~api.core.audit.commit_read`)."""

    @event.listens_for(engine.sync_engine, "begin")
    def _began(conn: Any) -> None:
        conn.info[_WROTE] = False

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not _READS.match(statement):
            conn.info[_WROTE] = True


def wrote(conn: AsyncConnection) -> bool:
    """Whether the transaction on ``conn`` has sent a statement that is not a ``SELECT`` (on
    PostgreSQL; ``True`` when nobody counted, as on SQLite)."""
    return bool(conn.sync_connection.info.get(_WROTE, True)) if conn.sync_connection is not None else True


FailureKind = Literal["busy", "timeout", "unavailable"]


def failure_kind(exc: BaseException) -> FailureKind | None:
    """What kind of database failure ``exc`` is: ``busy`` (up, but what the request needed was
    held past its bound: SQLite's write lock, every pooled connection), ``timeout`` (no answer
    within a bound: connecting, a statement, a reply), ``unavailable`` (refused, reset, down);
    ``None`` for anything else."""
    if isinstance(exc, sa_exc.TimeoutError):  # no free pooled connection within db_pool_timeout
        return "busy"
    orig: object
    if isinstance(exc, sa_exc.ProgrammingError) and isinstance(exc.orig, pg_errors.InvalidSqlStatementName):
        return "busy"  # a prepared statement (api.core.db.rows) gone behind psycopg's back: rolled back, prepared again
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        orig = exc  # the driver's own, where the service uses its connection directly (the chain walk)
    elif isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        orig = getattr(exc, "orig", None)
    else:
        return None
    if isinstance(orig, sqlite3.OperationalError) and (
        getattr(orig, "sqlite_errorcode", None) in _SQLITE_BUSY or "database is locked" in str(orig)
    ):
        return "busy"
    if isinstance(orig, pg_errors.LockNotAvailable | pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return "busy"  # contention: another transaction held what this one needed; it was rolled back
    if isinstance(orig, ReplyTimeout | pg_errors.ConnectionTimeout | pg_errors.QueryCanceled):
        return "timeout"
    return "unavailable"


_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, 517}  # 517: SQLITE_BUSY_SNAPSHOT


log = logging.getLogger("sinergi.db")

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

    async def wait_until_reachable(self, within: float) -> None:
        """Return once the database answers; try again (a log line each time, waits growing
        from half a second to five) while it refuses, times out or is not there, for at most
        ``within`` seconds, then raise the last failure. Each attempt is bounded by the
        connect and reply bounds. SQLite is tried once: a file that cannot be opened does not
        come up by itself."""
        if self.dialect == "sqlite":
            within = 0
        deadline = time.monotonic() + within
        pause = 0.5
        while True:
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                return
            except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError) as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("database not reachable after %.0f s (%s); giving up", within, type(exc).__name__)
                    raise
                pause = min(pause, left)
                log.warning("database not reachable yet (%s: %s); retrying in %.1f s, giving up in %.0f s",
                            type(exc).__name__, redacted(str(getattr(exc, "orig", None) or exc)), pause, left)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def dispose(self) -> None:
        await self.engine.dispose()


_PSYCOPG = PGDialect_psycopg()


@lru_cache(maxsize=256)
def driver_sql(sql: str) -> str:
    """A ``text()`` statement as psycopg takes it (``:name`` -> ``%(name)s``, ``%`` escaped)."""
    return str(sa.text(sql).compile(dialect=_PSYCOPG))


async def execute_text(session: AsyncSession, stmt: sa.TextClause | str, params: dict[str, Any]) -> CursorResult[Any]:
    """``session.execute(text(...), params)`` on PostgreSQL without SQLAlchemy's per-call
    statement handling (compiled once, handed to psycopg as it is): the hot statements of the
    batch push. Same connection and transaction as the session's; like ``session.execute`` of a
    ``text()`` it does no autoflush and no type processing of parameters or results."""
    sql = stmt if isinstance(stmt, str) else stmt.text
    conn = await session.connection()
    return await conn.exec_driver_sql(driver_sql(sql), params)


def driver_error(exc: psycopg.Error) -> sa_exc.StatementError:
    """A psycopg error raised where the service talks to psycopg itself, as SQLAlchemy's
    handlers would have raised it: its message redacted (:func:`redacted`), wrapped in the
    ``DBAPIError`` subclass of its kind, so that the unit's failure mapping (:func:`failure_kind`)
    and every ``except IntegrityError`` see what ``session.execute`` would have raised."""
    if exc.args and isinstance(exc.args[0], str):
        exc.args = (redacted(exc.args[0]), *exc.args[1:])
    return sa_exc.DBAPIError.instance(None, None, exc, psycopg.Error, hide_parameters=True)


@dataclass(frozen=True, slots=True)
class _Plan:
    compiled: Any  # SQLAlchemy's compiled statement (its SQL, its parameters' names)
    binds: tuple[tuple[str, Any], ...]  # (name, SQLAlchemy's bind processor) for the parameters that have one
    results: tuple[tuple[int, Any], ...]  # (column, SQLAlchemy's result processor) for the columns that have one


# The compiled cache of :func:`rows`: SQLAlchemy's own kind (the one an engine keeps), bounded.
_COMPILED: LRUCache[Any, Any] = LRUCache(500)
_PLANS: weakref.WeakKeyDictionary[Any, _Plan | None] = weakref.WeakKeyDictionary()
# Per statement object (a statement never changes; one kept and run again, its values named
# bind parameters given at each call, is not keyed again): its plan and its own values.
_OWN: weakref.WeakKeyDictionary[Any, tuple[sa.Dialect, _Plan | None, Any, Any]] = weakref.WeakKeyDictionary()


def _plan(compiled: Any, stmt: sa.Select[*tuple[Any, ...]], dialect: sa.Dialect) -> _Plan | None:
    if compiled.positional or compiled.escaped_bind_names or "POSTCOMPILE" in compiled.string:
        return None  # expanded per call (IN lists) or renamed parameters: SQLAlchemy's own path
    binds = tuple((name, proc) for bind, name in compiled.bind_names.items()
                  if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None)
    results = tuple((n, proc) for n, column in enumerate(stmt.selected_columns)
                    if (proc := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None)
    return _Plan(compiled, binds, results)


async def rows(session: AsyncSession, stmt: sa.Select[*tuple[Any, ...]], **params: Any) -> list[tuple[Any, ...]]:
    """The rows of a Core ``SELECT`` (columns, not ORM entities) on the session's connection
    and in its transaction, as tuples of the values ``session.execute(stmt, params)`` gives.

    The hot reads of every request (the caller, the object read) go through here: SQLAlchemy's
    execution costs several times the driver's own work for the same statement (≈ 1.1 ms of
    CPU for a referral read through the ORM, ≈ 0.6 ms through a Core connection, ≈ 0.26 ms at
    the driver; bench/README.md, "ninth round"). On PostgreSQL the statement is compiled by
    SQLAlchemy's own cache (keyed by the statement's structure; this call's values are its
    extracted parameters, as SQLAlchemy's execution takes them), psycopg prepares it on each
    connection, and parameters and results go through the type processing SQLAlchemy applies
    (enums read back as members, times as the column type gives them). ``params`` give values
    to named ``bindparam()`` s. Errors are SQLAlchemy's (:func:`driver_error`). A statement
    expanded per call (an ``IN`` list) and SQLite go through ``session.execute``.

    It uses SQLAlchemy's statement compilation as its ``Connection`` does (``_compile_w_cache``,
    ``construct_params``): pinned to SQLAlchemy 2.1 in pyproject.toml; every request's caller
    lookup runs through it, so a change there fails the whole suite, not one read."""
    conn = await session.connection()
    dialect = conn.dialect
    if dialect.name == "postgresql":
        own = _OWN.get(stmt)
        if own is None or own[0] is not dialect:
            compiled: Any
            compiled, extracted, collected, _hit = stmt._compile_w_cache(
                dialect, compiled_cache=_COMPILED, column_keys=[])
            try:
                plan = _PLANS[compiled]
            except KeyError:
                plan = _PLANS[compiled] = _plan(compiled, stmt, dialect)
            own = _OWN[stmt] = (dialect, plan, extracted, collected)
        _dialect, plan, extracted, collected = own
        if plan is not None:
            values = plan.compiled.construct_params(params or None, extracted_parameters=extracted,
                                                    _collected_params=collected)
            return await _driver_rows(conn, plan, dict(values or {}))
    return [tuple(r) for r in (await session.execute(stmt, params)).all()]


async def driver_connection(conn: AsyncConnection) -> Any:
    """The driver's connection (psycopg's, aiosqlite's) under ``conn``. While ``conn`` holds a
    live one (it is neither closed nor invalidated), taken directly: ``get_raw_connection()``
    is a hop through SQLAlchemy's greenlet (≈ 30 µs of CPU on a slow machine) to read the same
    attribute; otherwise through it (it may have to connect again, or raise)."""
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        return sync.connection.driver_connection
    return (await conn.get_raw_connection()).driver_connection


async def _driver_rows(conn: AsyncConnection, plan: _Plan, values: dict[str, Any]) -> list[tuple[Any, ...]]:
    for name, proc in plan.binds:
        if values.get(name) is not None:
            values[name] = proc(values[name])
    raw = await driver_connection(conn)
    try:
        cursor = raw.cursor()
        await cursor.execute(plan.compiled.string, values, prepare=True)
        fetched = await cursor.fetchall()
    except psycopg.Error as exc:
        raise driver_error(exc) from None
    if not plan.results:
        return list(fetched)
    out = []
    for row in fetched:
        cells = list(row)
        for n, proc in plan.results:
            cells[n] = proc(cells[n])
        out.append(tuple(cells))
    return out


M = TypeVar("M", bound=SQLModel)


# A statement of ORM objects -> its statement of the table's columns, for statements kept and run again.
_COLUMNS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


async def copies(session: AsyncSession, stmt: SelectOfScalar[M], **params: Any) -> list[M]:
    """The objects a ``select(Model)…`` finds, read at the driver (:func:`rows`) as copies
    that are not in the session: to show in a reply, never to change. They are not ORM
    objects (setting an attribute raises, the session refuses to add one); a route that
    changes an object loads it through the session. Every column of the model's table is
    read; the copies are built without validation, as the ORM builds what it loads."""
    model: Any = stmt.column_descriptions[0]["entity"]
    columns = _COLUMNS.get(stmt)
    if columns is None:
        columns = _COLUMNS[stmt] = stmt.with_only_columns(*model.__table__.columns)
    found = await rows(session, columns, **params)
    names = [c.key for c in model.__table__.columns]
    return [model.model_construct(**dict(zip(names, row, strict=True))) for row in found]
