"""Change positions: the commit order of the lists partners sync from.

``updated_at`` is the clock at the start of the writing transaction, so a transaction that
started first and commits last carries the earlier time: a partner that syncs by "everything
changed since the latest ``updated_at`` I saw" has already moved past it and never sees it.
Each synced list (``returnee``, ``referral``) therefore has a ``change_pos``: the writers name
the rows they changed (:meth:`api.core.unit.Unit.changed`), and the unit, just before it
commits, advances the list's head row (``change_head``) by their number and numbers them from
it, exactly as the event feed numbers its events (:mod:`api.core.outbox`). The head's row lock
is held to the commit, so the order of positions is the order of commits: a reader that has
seen position ``n`` has seen every change committed before it, and a change committed later
gets a position above ``n``. One head per list, not per province: the list a caller reads
spans every province it may see, and one counter orders all of it.

New rows may be numbered as they are inserted instead (:func:`insert_numbered`, PostgreSQL: the
head advanced and the rows inserted with their positions in one statement), which spares
writing every new row twice; the head's lock is then taken at the insert and held to the
commit. With ``at_commit`` that statement is not sent at once but with the unit's COMMIT
(:meth:`api.core.unit.Unit.write_at_commit`), in one message with what follows it: the head is
then held for the database's own time only, not across the round trips and the busy event loop
of the rest of the request (batches of every partner queue behind it). A unit that writes rows
of such a list takes its head before the other rows it writes that another unit holding the
head may need (the register's; at its numbered insert, or with
:func:`take_early` for a unit that only updates), so that no unit holds such a row while it
waits for the head itself. The one thing written before the head is the persons of a
returnee batch (a person is found or made by NIK, every unit doing it before any head, in
NIK order), with a row lock that a foreign key's check does not wait for: the unit holding
the head may name those persons, never lock them. Every unit takes the heads in one order
(:func:`head_order`): the heads that may be taken early first, then the others by name, so
two units never wait for each other's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import bulk
from api.core.db import execute_text
from api.core.sql import dialect_of, table_of
from api.core.unit import unit_of
from models import ChangeHead

# The heads a writer may take at its insert (insert_numbered), before any other: every unit
# takes heads in head_order, whichever of them it takes early.
EARLY = ("returnee",)


def head_order(key: str) -> tuple[int, str]:
    return (EARLY.index(key) if key in EARLY else len(EARLY), key)

# PostgreSQL: the head advanced (made, for the list's first change or a fresh schema: no head
# can be missing) and the rows numbered in one statement (the head's row lock taken as late as
# possible). The ids are sorted: their order is the order of positions within the unit.
_PG_HEAD = "INSERT INTO change_head (key, pos) VALUES (:key, :n) ON CONFLICT (key) DO UPDATE " \
           "SET pos = change_head.pos + EXCLUDED.pos RETURNING pos"

_PG_NUMBER = f"""
    WITH h AS ({_PG_HEAD})
    UPDATE {{table}} AS t SET change_pos = h.pos - :n + x.ord
      FROM h, unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS x(id, ord)
     WHERE t.id = x.id
"""


_PG_INSERT_NUMBERED = f"""
    WITH h AS ({_PG_HEAD})
    INSERT INTO {{table}} ({{cols}}, change_pos)
    SELECT {{cols}}, h.pos - :n + x.ordinality
      FROM h, json_populate_recordset(NULL::{{table}}, :rows) WITH ORDINALITY AS x
"""


async def insert_numbered(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]],
                          changed: Callable[[sa.Table, Iterable[uuid.UUID]], None], *,
                          at_commit: bool = False) -> None:
    """Insert new rows of a synced list (dicts with the same keys, as :mod:`api.core.bulk` takes
    them; an ``id`` each) with their change positions. On PostgreSQL one statement advances the
    head and inserts the rows numbered from it, sent now or, with ``at_commit``, with the
    unit's COMMIT (:meth:`api.core.unit.Unit.write_at_commit`: nothing later in the unit may
    read the rows, or it sends the waiting writes first); elsewhere the rows are inserted now
    and named to ``changed`` (the unit's :meth:`~api.core.unit.Unit.changed`), numbered at the
    commit. The list's key must be in :data:`EARLY`. Raises
    :class:`sqlalchemy.exc.IntegrityError` as an INSERT does (with ``at_commit``: the commit)."""
    if not rows:
        return
    key = table.name
    if key not in EARLY:
        raise ValueError(f"the head of {key!r} is taken at the commit, not at an insert (changes.EARLY)")
    if dialect_of(session) != "postgresql":
        await bulk.insert_rows(session, table, rows)
        changed(table, (r["id"] for r in rows))
        return
    sql = _insert_sql(table, tuple(rows[0]))
    params = {"n": len(rows), "key": key, "rows": orjson.dumps(rows).decode()}
    if at_commit:
        unit_of(session).write_at_commit(sql, params)
    else:
        await execute_text(session, sql, params)


async def take_early(session: AsyncSession, table: sa.Table) -> None:
    """Take the head of a list of :data:`EARLY` now and hold it to the commit: a unit that
    writes rows of the list and inserts none takes it before the other rows it writes (the
    register's), as :func:`insert_numbered` takes it at its insert. Otherwise a unit holding the
    head may wait for a row another unit wrote, while that unit waits for the head (at its
    insert, or at its commit to number the rows it changed): a deadlock. On SQLite the write
    lock orders every writer already."""
    key = table.name
    if key not in EARLY:
        raise ValueError(f"the head of {key!r} is taken at the commit (changes.EARLY)")
    if dialect_of(session) != "postgresql":
        return
    await execute_text(session, _PG_TAKE, {"key": key})


# The head taken as a write of it, which makes it when missing (the list's first change or a
# fresh schema): a locking read of no row would take nothing.
_PG_TAKE = "INSERT INTO change_head (key, pos) VALUES (:key, 0) ON CONFLICT (key) DO UPDATE SET pos = change_head.pos"


@lru_cache(maxsize=16)
def _insert_sql(table: sa.Table, columns: tuple[str, ...]) -> str:
    q = postgresql.dialect().identifier_preparer.quote
    return _PG_INSERT_NUMBERED.format(table=q(table.name), cols=", ".join(q(c) for c in columns))


async def _ensure_head(session: AsyncSession, key: str) -> None:
    """Create the head of list ``key`` (its first change) unless another unit just did (SQLite)."""
    await session.execute(sqlite_insert(table_of(ChangeHead)).values(key=key, pos=0).on_conflict_do_nothing())


def statements(changed: Mapping[str, tuple[sa.Table, set[uuid.UUID]]]) -> list[tuple[str, dict[str, Any]]]:
    """PostgreSQL: the statements that give the rows in ``changed`` (table name -> (table,
    ids)) their change positions, heads in :func:`head_order` (every unit takes them in the same
    order, before the event and audit heads: no deadlock); the unit sends them with its COMMIT.
    The head of a table is keyed by the table's name."""
    out = []
    for key in sorted(changed, key=head_order):
        table, wanted = changed[key]
        if wanted:
            out.append((_number_sql(table.name), {"key": key, "n": len(wanted), "ids": sorted(wanted)}))
    return out


@lru_cache(maxsize=16)
def _number_sql(table: str) -> str:
    return _PG_NUMBER.format(table=postgresql.dialect().identifier_preparer.quote(table))


async def flush(session: AsyncSession, changed: Mapping[str, tuple[sa.Table, set[uuid.UUID]]]) -> None:
    """Elsewhere than on PostgreSQL (:func:`statements` there): give the rows in ``changed``
    their change positions now, heads in :func:`head_order`."""
    for key in sorted(changed, key=head_order):
        table, wanted = changed[key]
        ids = sorted(wanted)
        if not ids:
            continue
        head = table_of(ChangeHead)
        advance = sa.update(head).where(head.c.key == key).values(pos=head.c.pos + len(ids)).returning(head.c.pos)
        row = (await session.execute(advance)).first()
        if row is None:
            await _ensure_head(session, key)
            row = (await session.execute(advance)).first()
        assert row is not None
        first = int(row[0]) - len(ids) + 1
        await session.execute(
            sa.update(table).where(table.c.id == sa.bindparam("b_id")).values(change_pos=sa.bindparam("b_pos")),
            [{"b_id": i, "b_pos": first + n} for n, i in enumerate(ids)],
            execution_options={"synchronize_session": False},
        )
