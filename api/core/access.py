"""Access rules: which rows a caller may see, as SQL conditions.

:func:`in_jurisdiction` is how every resource limits its queries to what the caller may see;
:func:`visible_or_404` runs such a query and makes "not found" and "not yours" the same 404,
exactly as if the object did not exist.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core.context import Caller
from api.core.errors import NotFound


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
