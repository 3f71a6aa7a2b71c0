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
from api.deps import require_scope
from api.errors import NotFound
from api.scopes import SCOPES as SCOPE_DESCRIPTIONS

SCOPES = tuple(SCOPE_DESCRIPTIONS)

Admin = Annotated[Caller, Depends(require_scope("admin"))]
AuditRead = Annotated[Caller, Depends(require_scope("audit:read"))]
ReturneesWrite = Annotated[Caller, Depends(require_scope("returnees:write"))]
ReturneesRead = Annotated[Caller, Depends(require_scope("returnees:read"))]
NoticesWrite = Annotated[Caller, Depends(require_scope("notices:write"))]
NoticesRead = Annotated[Caller, Depends(require_scope("notices:read"))]
NoticesAck = Annotated[Caller, Depends(require_scope("notices:ack"))]
ReferralsWrite = Annotated[Caller, Depends(require_scope("referrals:write"))]
ReferralsRead = Annotated[Caller, Depends(require_scope("referrals:read"))]
ReferralsAct = Annotated[Caller, Depends(require_scope("referrals:respond", "referrals:write"))]
StatsRead = Annotated[Caller, Depends(require_scope("stats:read"))]
EventsRead = Annotated[Caller, Depends(require_scope("events:read"))]
WebhooksManage = Annotated[Caller, Depends(require_scope("webhooks:manage"))]


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
