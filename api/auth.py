"""Who may call what, and what they may see.

Route signatures name the scope they need through these aliases; :func:`in_jurisdiction` and
:func:`visible_or_404` are how every resource limits its queries to what the caller may see
(an object outside them is a 404, exactly as if it did not exist).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.context import Caller
from api.deps import RequireAnyScope, RequireScope
from api.errors import NotFound

SCOPES = (
    "returnees:write",
    "returnees:read",
    "pii:read",
    "notices:write",
    "notices:read",
    "notices:ack",
    "referrals:write",
    "referrals:read",
    "referrals:respond",
    "stats:read",
    "audit:read",
    "events:read",
    "webhooks:manage",
    "admin",
)

Admin = Annotated[Caller, Depends(RequireScope("admin"))]
AuditRead = Annotated[Caller, Depends(RequireScope("audit:read"))]
ReturneesWrite = Annotated[Caller, Depends(RequireScope("returnees:write"))]
ReturneesRead = Annotated[Caller, Depends(RequireScope("returnees:read"))]
NoticesWrite = Annotated[Caller, Depends(RequireScope("notices:write"))]
NoticesRead = Annotated[Caller, Depends(RequireScope("notices:read"))]
NoticesAck = Annotated[Caller, Depends(RequireScope("notices:ack"))]
ReferralsWrite = Annotated[Caller, Depends(RequireScope("referrals:write"))]
ReferralsRead = Annotated[Caller, Depends(RequireScope("referrals:read"))]
ReferralsAct = Annotated[Caller, Depends(RequireAnyScope("referrals:respond", "referrals:write"))]
StatsRead = Annotated[Caller, Depends(RequireScope("stats:read"))]
EventsRead = Annotated[Caller, Depends(RequireScope("events:read"))]
WebhooksManage = Annotated[Caller, Depends(RequireScope("webhooks:manage"))]


def in_jurisdiction(caller: Caller, column: Any) -> sa.ColumnElement[bool]:
    """SQL condition: ``column`` (a region code) lies in the caller's jurisdiction."""
    j = caller.jurisdiction
    return sa.or_(column == j, column.startswith(j + ".", autoescape=True))


T = TypeVar("T")


async def visible_or_404(session: AsyncSession, stmt: SelectOfScalar[T], what: str = "resource") -> T:
    """Run a query already limited to what the caller may see; nothing found is a 404."""
    obj = (await session.exec(stmt)).first()
    if obj is None:
        raise NotFound(f"No such {what}")
    return obj
