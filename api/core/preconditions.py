"""Strong ETags and ``If-Match`` for resources that change.

A resource's ETag is its version number, quoted. A state change needs ``If-Match`` with the
current ETag: ``428`` without it (or with ``*``, which would match any version), ``412`` when
it is stale. The update itself must also be
conditional on the version (see :func:`bump`), so that of two simultaneous changes exactly one
wins even when both passed the ``If-Match`` check.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.errors import PreconditionFailed, PreconditionRequired
from api.core.sql import rowcount, table_of


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("Send If-Match with the resource's current ETag")
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags:
        # "*" matches any version (RFC 9110 13.1.1), so it would let a change through that was
        # decided on a version the caller never read: a state change needs the ETag itself.
        raise PreconditionRequired("If-Match: * is not accepted here; send the ETag of the version you read")
    if etag(version) not in tags:
        raise PreconditionFailed(
            "The resource has changed since you read it; read it again and retry",
            current_etag=etag(version),
        )


async def bump(session: AsyncSession, model: Any, id: Any, version: int, **values: Any) -> int:
    """``UPDATE ... SET version = version + 1 WHERE id = :id AND version = :version``.

    Returns the new version; a concurrent change that won first makes this a 412."""
    table = table_of(model)
    result = await session.execute(
        sa.update(table)
        .where(table.c.id == id, table.c.version == version)
        .values(version=table.c.version + 1, **values)
    )
    if rowcount(result) != 1:
        raise PreconditionFailed("The resource was changed by another request; read it again and retry")
    return version + 1
