"""The unit of work: one transaction that carries its audit entries and events.

Every write of the service, and every audited read, happens inside a unit. A unit owns one
session; services reach it through :func:`unit_of` (``unit_of(session).audit(...)``, or the
shorthands :func:`api.core.audit.record` and :func:`api.core.outbox.emit`), and :meth:`Unit.commit`
writes what it recorded in the same transaction just before committing: the audit subjects
first (no lock needed), then the events (the feed's head), then the audit chain (its head), so
two units never deadlock and the heads' row locks are held as briefly as possible.

A session that was not opened as a unit has no context: :func:`unit_of` raises instead of
inventing one, so an audit entry can never be lost silently. The HTTP layer opens a unit per
request (:mod:`api.http.session`); the command line and the demo loader open theirs with
:func:`operator_unit`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.context import AuditRecord, PendingEvent, RequestContext
from api.core.db import Database
from api.core.settings import Settings
from models import Outcome

_KEY = "sinergi.unit"


class NoUnit(RuntimeError):
    """A service recorded an audit entry or an event on a session that is not a unit."""


class Unit:
    """One transaction with its audit entries and events."""

    __slots__ = ("session", "ctx", "settings")

    def __init__(self, session: AsyncSession, ctx: RequestContext, settings: Settings) -> None:
        self.session = session
        self.ctx = ctx
        self.settings = settings  # the service's settings, as the application was made with them
        session.info[_KEY] = self

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
        from api.core import audit, outbox  # they use this module's unit_of

        session, ctx = self.session, self.ctx
        await session.flush()
        default_chain = self.settings.audit_chain
        staged = await audit.stage(session, ctx, ctx.audit, default_chain)  # audit subjects: no lock needed
        await outbox.flush(session, ctx, default_chain)
        await audit.append_staged(session, staged)
        ctx.audit.clear()
        await session.commit()


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
