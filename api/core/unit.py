"""The unit of work: one transaction that carries its audit entries and events.

Every write of the service, and every audited read, happens inside a unit. A unit owns one
session; services reach it through :func:`unit_of` (``unit_of(session).audit(...)``, or the
shorthands :func:`api.core.audit.record` and :func:`api.core.outbox.emit`), and :meth:`Unit.commit`
writes what it recorded in the same transaction just before committing: the change positions
of the rows it changed (the lists' heads, :mod:`api.core.changes`, in its one order; new
returnee records are numbered as they are inserted, their head taken then), then the events
(the feed's head), then the audit chain (its head, the entries' subjects written first), so two
units never deadlock and the heads' row locks are held as briefly as possible.

The last message. On PostgreSQL all of that goes to the server in one message with the COMMIT
(:func:`api.core.audit.append_and_commit`), after the writes a service asked to send with it
(:meth:`Unit.write_at_commit`: the batch push's numbered insert of new records and the rows that
follow it, which take the returnee list's head): a head taken in that message is held for the
database's own time, not across round trips through a busy event loop, where the batches of
every partner would queue behind it. A write sent with the COMMIT that fails (a concurrent
request wrote the same key first) fails the COMMIT with it: nothing is written, and a unique
key's refusal is answered 409, to be retried (:meth:`Unit._commit_with`).

Reading on SQLite. SQLite has one write lock for the whole database; a transaction that takes it
up front (``BEGIN IMMEDIATE``, :mod:`api.core.db`) makes every reader queue behind every writer.
A unit opened for a request that should only read (:meth:`Unit.reading`: the HTTP layer calls
it for GET and HEAD) therefore begins with a plain deferred ``BEGIN``: in WAL mode it takes no
lock and waits for no writer. Such a request still writes its audit entry, and a deferred
transaction that has read cannot start writing once another connection has committed since
(``SQLITE_BUSY_SNAPSHOT``, which no busy timeout cures). So at commit, if the read transaction
wrote nothing (SQLite's own change counter says so), the unit ends it and writes its audit
entries and events in a short write transaction of its own (``BEGIN IMMEDIATE``): nothing of the
request is split, since the first transaction changed nothing, and a request that fails still
writes nothing but its failure entry. If it did write (a GET that writes is unusual, but
allowed), it commits as one transaction as before, its first write having taken the lock.
Writing requests keep ``BEGIN IMMEDIATE`` from the start: their reads and writes stay one
atomic transaction. PostgreSQL needs none of this (readers never wait for writers there).

Reading on PostgreSQL. A unit whose transaction sent nothing but ``SELECT`` statements (the engine notes
it: :func:`api.core.db.wrote`) and queued no event commits through
:func:`api.core.audit.commit_read`: its entries are appended together with those of the other
reads of the same chain committing in this process at the same moment (a group commit; its
reply still waits until they are committed). Any other unit appends its entries in its own
transaction, with what it wrote.

A lost COMMIT. When the connection fails after ``COMMIT`` was sent and before its answer came,
the transaction may have committed or not, and nothing here can tell. :meth:`Unit.commit` then
raises :class:`api.core.errors.OutcomeUnknown` (503 ``/problems/outcome-unknown``) instead of
the database error, whose reply would say "nothing was changed", and leaves
:attr:`Unit.outcome_unknown` set: whoever records failures must not record this one as failed
(if it committed, its own audit entries, written in the same transaction, are in the chain). A
COMMIT the database answered with an error (a deferred constraint, a serialisation failure, the
statement sent with it cancelled by the statement timeout: :func:`_not_committed`) and
any COMMIT on SQLite (a local file: one that raises has not committed) are known not to have
happened; everything before the COMMIT is known too (a transaction whose connection is lost
before its COMMIT is rolled back by the server).

A session that was not opened as a unit has no context: :func:`unit_of` raises instead of
inventing one, so an audit entry can never be lost silently. The HTTP layer opens a unit per
request (its session dependency); the command line and the demo loader open theirs with
:func:`operator_unit`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.context import AuditRecord, PendingEvent, RequestContext
from api.core.db import Database, execute_text, wrote
from api.core.errors import Conflict, OutcomeUnknown
from api.core.settings import Settings
from api.core.sql import dialect_of
from models import Outcome

_KEY = "sinergi.unit"
log = logging.getLogger("sinergi.unit")


class NoUnit(RuntimeError):
    """A service recorded an audit entry or an event on a session that is not a unit."""


class Unit:
    """One transaction with its audit entries and events."""

    __slots__ = ("session", "ctx", "settings", "changes", "outcome_unknown", "_read_changes", "_at_commit")

    def __init__(self, session: AsyncSession, ctx: RequestContext, settings: Settings) -> None:
        self.session = session
        self.ctx = ctx
        self.settings = settings  # the service's settings, as the application was made with them
        self.changes: dict[str, tuple[sa.Table, set[uuid.UUID]]] = {}  # rows changed (api.core.changes)
        self._read_changes: int | None = None  # SQLite's change count when a read transaction began
        self.outcome_unknown = False  # COMMIT was sent and its answer lost (see the module's docstring)
        self._at_commit: list[tuple[str, dict[str, Any]]] = []  # writes sent with the COMMIT (PostgreSQL)
        session.info[_KEY] = self

    async def reading(self) -> None:
        """Begin the unit's transaction as a read transaction on SQLite (no write lock; see the
        module's docstring); on PostgreSQL nothing changes. Call it before the first statement."""
        if dialect_of(self.session) != "sqlite" or self.session.in_transaction():
            return
        conn = await self.session.connection(execution_options={"sinergi_readonly": True})
        self._read_changes = await _sqlite_changes(conn)

    def changed(self, table: sa.Table, ids: Iterable[uuid.UUID]) -> None:
        """Note rows of a synced list's table (``returnee``, ``referral``: a ``change_pos``
        column) that this unit created or changed: they get their change positions when it
        commits (:mod:`api.core.changes`)."""
        self.changes.setdefault(table.name, (table, set()))[1].update(ids)

    def write_at_commit(self, sql: str, params: dict[str, Any]) -> None:
        """Send a write (PostgreSQL: the SQL of a ``text()`` statement and its values) with the
        unit's COMMIT instead of now: in the last message, before the unit's own (see the
        module's docstring), in the order given. For a write that takes a head and those that
        must follow it. Nothing later in the unit may read or name the rows it writes (a
        foreign key): a step that does sends the waiting writes first (:meth:`write_pending`).
        An error it raises is the COMMIT's. Elsewhere than on PostgreSQL there is no last
        message: a write is sent when it is made (this raises)."""
        if dialect_of(self.session) != "postgresql":
            raise ValueError("writes sent with the COMMIT are PostgreSQL's; write it now")
        self._at_commit.append((sql, params))

    async def write_pending(self) -> None:
        """Send the writes waiting for the COMMIT now, in their order (before a step that reads
        what they write)."""
        pending, self._at_commit = self._at_commit, []
        for sql, params in pending:
            await execute_text(self.session, sql, params)

    def audit(
        self,
        action: str,
        *,
        resource_type: str | None = None,
        resource_id: Any = None,
        subjects: Sequence[tuple[str, Any]] = (),
        outcome: Outcome = Outcome.allowed,
        **detail: Any,
    ) -> None:
        """Record an audit entry; it is appended to the chain when the unit commits."""
        rid = None if resource_id is None else str(resource_id)
        subs = [(t, str(i)) for t, i in subjects]
        if resource_type and rid and (resource_type, rid) not in subs:
            subs.insert(0, (resource_type, rid))
        self.ctx.audit.append(
            AuditRecord(action, outcome, resource_type, rid, subs, {k: v for k, v in detail.items() if v is not None})
        )

    def emit(self, type: str, data: dict[str, Any], *, region: str | None, audience: Iterable[str] = ()) -> None:
        """Queue an event. ``region``: callers whose jurisdiction covers it may see it;
        ``audience``: agencies that may see it wherever they are."""
        self.ctx.events.append(PendingEvent(type, data, region, tuple(sorted(set(audience)))))

    async def commit(self) -> None:
        """Write the unit's events and audit entries, then commit."""
        from api.core import audit, changes, outbox  # they use this module's unit_of

        session, ctx = self.session, self.ctx
        await session.flush()
        if self._read_changes is not None:
            read_only = session.in_transaction() and await _sqlite_changes(await session.connection()) == self._read_changes
            self._read_changes = None
            if read_only:  # end the read transaction; what follows begins a short write one
                await session.commit()
        default_chain = self.settings.audit_chain
        postgres = dialect_of(session) == "postgresql"
        # Audit subjects need no lock: on PostgreSQL written with the chain's append (its function
        # writes them first), elsewhere first.
        reads_only = not self.changes and not ctx.events and not self._at_commit
        staged = await audit.stage(session, ctx, ctx.audit, default_chain, defer_subjects=reads_only or postgres)
        if reads_only and staged.rows and postgres and not wrote(conn := await session.connection()):
            # nothing written but the entries: appended with other reads' (audit.commit_read)
            await self._commit_with(audit.commit_read(session, staged, conn))
            return
        if postgres:
            # The last message: the writes waiting for the COMMIT, the change positions, the
            # events, the chain's append, the COMMIT (see the module's docstring).
            last = self._at_commit + changes.statements(self.changes) + outbox.statements(ctx, default_chain)
            self._at_commit = []
            self.changes.clear()
            # From here until the database has answered, the COMMIT may have been made.
            await self._commit_with(audit.append_and_commit(session, staged, before=last))
            return
        if self.changes:
            await changes.flush(session, self.changes)
            self.changes.clear()
        await outbox.flush(session, ctx, default_chain)
        await session.flush()  # nothing left to send but the chain append and the COMMIT
        await self._commit_with(audit.append_and_commit(session, staged))

    async def _commit_with(self, committing: Awaitable[None]) -> None:
        """Await the COMMIT (with the last of what the unit writes), telling a lost answer
        from a refusal (see the module's docstring)."""
        self.outcome_unknown = True
        try:
            await committing
        except Exception as exc:
            if _not_committed(self.session, exc):
                self.outcome_unknown = False
                if getattr(getattr(exc, "orig", None), "sqlstate", None) == "23505":
                    # a unique key written with the COMMIT (write_at_commit) that a concurrent
                    # request wrote first: every check before it passed, so a retry can pass
                    diag = getattr(getattr(exc, "orig", None), "diag", None)
                    log.warning("a write sent with the COMMIT met a unique key written at the same moment (%s)",
                                getattr(diag, "constraint_name", None))
                    raise Conflict("Another request wrote the same records at the same moment; nothing was "
                                   "changed, retry the request") from None
                raise
            raise OutcomeUnknown() from exc
        self.outcome_unknown = False
        self.ctx.audit.clear()


def _not_committed(session: AsyncSession, exc: BaseException) -> bool:
    """Whether a COMMIT that raised ``exc`` certainly committed nothing: on SQLite always (a
    local file); on PostgreSQL when the server itself answered that the transaction failed
    (:data:`_REFUSED`: a constraint, a serialisation failure or deadlock, a statement cancelled
    by its timeout, a lock not available, bad data, a rule of ours): a statement sent with the
    COMMIT failed, and a transaction with a failed statement is rolled back, its COMMIT with it.
    A lost connection, no answer in time (this side's bound), 40003 ("statement completion
    unknown"), a server shutting down or out of resources, anything else: perhaps committed."""
    if dialect_of(session) == "sqlite":
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(state, str) and state != "40003" and (state[:2] in _REFUSED or state in _REFUSED)


# SQLSTATE classes (and one code) of errors the server answers about a statement while the
# session lives on: 22 data exception, 23 integrity constraint, 25 invalid transaction state, 26
# invalid statement name (a prepared statement gone), 40 transaction rollback (but 40003), 42
# syntax or access rule (the append-only trigger), 0A feature not supported, 55 object not in
# prerequisite state (55P03 lock not available), P0 a raised exception; 57014 query cancelled
# (the statement timeout; not the rest of class 57, which is the server going away).
_REFUSED = frozenset({"22", "23", "25", "26", "40", "42", "0A", "55", "P0", "57014"})


async def _sqlite_changes(conn: Any) -> int:
    """The rows the SQLite connection under ``conn`` has changed since it was opened."""
    raw = await conn.get_raw_connection()
    return int(raw.driver_connection.total_changes)


def unit_of(session: AsyncSession) -> Unit:
    """The unit ``session`` belongs to; :class:`NoUnit` when it belongs to none."""
    unit = session.info.get(_KEY)
    if unit is None:
        raise NoUnit("this session is not a unit of work: open one with api.core.unit (open_unit, operator_unit)")
    return unit


def context_of(session: AsyncSession) -> RequestContext:
    return unit_of(session).ctx


@asynccontextmanager
async def open_unit(db: Database, ctx: RequestContext) -> AsyncIterator[Unit]:
    """A unit on a new session: committed (with its audit entries and events) when the block
    ends, rolled back when it raises."""
    async with db.sessionmaker() as session:
        unit = Unit(session, ctx, db.settings)
        try:
            yield unit
        except BaseException:
            await session.rollback()
            raise
        await unit.commit()


@asynccontextmanager
async def operator_unit(db: Database, actor: str = "cli") -> AsyncIterator[AsyncSession]:
    """A unit of work outside HTTP (the command line, the demo loader), audited as ``actor``."""
    ctx = RequestContext(request_id=None, client_id=actor, route="cli")
    async with open_unit(db, ctx) as unit:
        yield unit.session
