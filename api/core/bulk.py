"""Bulk INSERT of many rows in one statement.

On PostgreSQL the rows go as one JSON document, ``INSERT ... SELECT ... FROM
json_populate_recordset(NULL::table, :rows)``: one statement with one parameter whatever the
row count, serialised by orjson and parsed by the server in C. (An ``executemany`` costs a
statement per row; a multi-row ``VALUES`` list costs parsing thousands of placeholders on every
call; arrays per column cost psycopg's text quoting of every element.) On SQLite, where a
statement is a function call, it is an ``executemany``.

Values are given as the database takes them: no SQLAlchemy type processing happens here, so
times must be aware datetimes and JSON columns Python lists or dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.db import execute_text
from api.core.sql import dialect_of
from api.core.unit import unit_of

_PG = postgresql.dialect()


def insert_sql(table: sa.Table, columns: tuple[str, ...]) -> str:
    """The PostgreSQL statement :func:`insert_rows` runs (``:rows``: the rows' JSON document),
    for a caller that sends it itself."""
    return _pg_sql(table, columns, None)


@lru_cache(maxsize=64)
def _pg_sql(table: sa.Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None, update: bool = False) -> str:
    q = _PG.identifier_preparer.quote
    cols = ", ".join(q(c) for c in columns)
    sql = f"INSERT INTO {q(table.name)} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{q(table.name)}, :rows)"
    if conflict is not None:
        target = f" ({', '.join(q(c) for c in conflict)})" if conflict else ""
        if update:
            sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in columns if c not in conflict)
            sql += f" ON CONFLICT{target} DO UPDATE SET {sets}"
        else:
            sql += f" ON CONFLICT{target} DO NOTHING"
    return sql


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict_do_nothing: Sequence[str] | None = None,
    on_conflict_update: Sequence[str] | None = None,
    at_commit: bool = False,
) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``; with
    ``on_conflict_do_nothing=[columns]``, rows that would violate that unique key are skipped;
    with ``on_conflict_update=[columns]``, they replace the stored row's other given columns (an
    upsert). Rows of one call must not repeat a key (PostgreSQL refuses to update a row twice).
    With ``at_commit``, on PostgreSQL the statement is sent with the unit's COMMIT
    (:meth:`api.core.unit.Unit.write_at_commit`), elsewhere now."""
    if not rows:
        return
    if on_conflict_do_nothing is not None and on_conflict_update is not None:
        raise ValueError("either skip or update the rows that conflict, not both")
    columns = tuple(rows[0])
    update = on_conflict_update is not None
    keys = on_conflict_update if on_conflict_update is not None else on_conflict_do_nothing
    conflict = None if keys is None else tuple(keys)
    if dialect_of(session) == "postgresql":
        doc = orjson.dumps(rows if isinstance(rows, list) else list(rows)).decode()
        if at_commit:
            unit_of(session).write_at_commit(_pg_sql(table, columns, conflict, update), {"rows": doc})
        else:
            await execute_text(session, _pg_sql(table, columns, conflict, update), {"rows": doc})
        return
    if conflict is not None:
        from sqlalchemy.dialects.sqlite import insert

        stmt: Any = insert(table)
        if update:
            stmt = stmt.on_conflict_do_update(index_elements=list(conflict),
                                              set_={c: stmt.excluded[c] for c in columns if c not in conflict})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict) or None)
    else:
        stmt = sa.insert(table)
    await session.execute(stmt, list(rows))
