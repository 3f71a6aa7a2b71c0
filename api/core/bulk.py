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

_PG = postgresql.dialect()


def insert_sql(table: sa.Table, columns: tuple[str, ...]) -> str:
    """The PostgreSQL statement :func:`insert_rows` runs (``:rows``: the rows' JSON document),
    for a caller that sends it itself."""
    return _pg_sql(table, columns, None)


@lru_cache(maxsize=64)
def _pg_sql(table: sa.Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None) -> str:
    q = _PG.identifier_preparer.quote
    cols = ", ".join(q(c) for c in columns)
    sql = f"INSERT INTO {q(table.name)} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{q(table.name)}, :rows)"
    if conflict is not None:
        sql += f" ON CONFLICT ({', '.join(q(c) for c in conflict)}) DO NOTHING" if conflict else " ON CONFLICT DO NOTHING"
    return sql


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict_do_nothing: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``; with
    ``on_conflict_do_nothing=[columns]``, rows that would violate that unique key are skipped."""
    if not rows:
        return
    columns = tuple(rows[0])
    conflict = None if on_conflict_do_nothing is None else tuple(on_conflict_do_nothing)
    if dialect_of(session) == "postgresql":
        doc = orjson.dumps(rows if isinstance(rows, list) else list(rows)).decode()
        await execute_text(session, _pg_sql(table, columns, conflict), {"rows": doc})
        return
    if conflict is not None:
        from sqlalchemy.dialects.sqlite import insert

        stmt: Any = insert(table).on_conflict_do_nothing(index_elements=list(conflict) or None)
    else:
        stmt = sa.insert(table)
    await session.execute(stmt, list(rows))
