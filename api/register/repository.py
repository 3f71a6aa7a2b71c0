"""Register queries, in one place: who may read which person and which departure, and the
writers' statements.

:func:`readable` is THE rule for reading the register's persons: callers whose jurisdiction
covers the person's origin (district or sub-district: that of their latest record).
:func:`readable_departures` is the rule for departure records: the same, by the departure's
origin, and the agency that recorded it. Returnee records are read through
:mod:`api.returnees.repository` (its readable statement).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import bulk, pagination
from api.core.access import in_jurisdiction, visible_or_404
from api.core.context import Caller
from api.core.pagination import Position, Slice
from api.core.sql import table_of
from api.stats import service as stats
from models import Departure, RegisterPerson, RegisterStatus

# --- the readable sets -----------------------------------------------------------------------


def readable(caller: Caller) -> SelectOfScalar[RegisterPerson]:
    """The register's persons ``caller`` may read. The one place that decides it."""
    return select(RegisterPerson).where(_in_view(caller))


def _in_view(caller: Caller) -> sa.ColumnElement[bool]:
    return sa.or_(in_jurisdiction(caller, col(RegisterPerson.origin_district)),
                  in_jurisdiction(caller, col(RegisterPerson.origin_subdistrict)))


def readable_departures(caller: Caller) -> SelectOfScalar[Departure]:
    """The departure records ``caller`` may read: by their origin, and its agency's own."""
    return select(Departure).where(sa.or_(in_jurisdiction(caller, col(Departure.origin_district)),
                                          in_jurisdiction(caller, col(Departure.origin_subdistrict)),
                                          col(Departure.source_agency) == caller.agency))


async def get_readable(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> RegisterPerson:
    return await visible_or_404(session, readable(caller).where(col(RegisterPerson.person_id) == person_id),
                                "person")


@dataclass
class PersonFilter:
    region: str | None = None  # a district, sub-district or village code
    status: RegisterStatus | None = None
    repeat_return: bool | None = None


async def readable_page(session: AsyncSession, caller: Caller, f: PersonFilter, *, after: Position | None,
                        limit: int) -> Slice[RegisterPerson]:
    stmt = readable(caller)
    if f.region:
        r = f.region
        stmt = stmt.where(sa.or_(col(RegisterPerson.origin_district) == r, col(RegisterPerson.origin_subdistrict) == r,
                                 col(RegisterPerson.origin_village) == r))
    if f.status is not None:
        stmt = stmt.where(col(RegisterPerson.status) == str(f.status))
    if f.repeat_return is not None:
        stmt = stmt.where(col(RegisterPerson.repeat_return) == f.repeat_return)
    return await pagination.read_page(session, stmt, [col(RegisterPerson.person_id)], after, limit)


async def departures_of_person(session: AsyncSession, caller: Caller, person_id: uuid.UUID) -> list[Departure]:
    stmt = readable_departures(caller).where(col(Departure.person_id) == person_id).order_by(
        col(Departure.departure_date), col(Departure.id))
    return list((await session.exec(stmt)).all())


# --- counts ----------------------------------------------------------------------------------

COUNT_FLAGS = ("departed", "abroad", "returned", "deported", "repeat_return")


async def count_rows(session: AsyncSession, caller: Caller, district: str, by: str) -> tuple[list[Any], int]:
    """Readable persons of ``district`` grouped by origin sub-district (or village): per group
    the count and cell-key sum of all, then of each of :data:`COUNT_FLAGS` (the rows
    :func:`api.stats.service.protect` publishes); and the rounding base."""
    dialect, secret, base = await stats.prepare(session)
    t = table_of(RegisterPerson).c
    key = stats.id_key_sql(dialect, secret, "person", t.person_id)
    dim = (t.origin_subdistrict if by == "subdistrict" else t.origin_village).label(by)
    flags = {
        "departed": t.departures > 0,
        "abroad": t.status == RegisterStatus.abroad.value,
        "returned": t.status == RegisterStatus.returned.value,
        "deported": t.status == RegisterStatus.deported.value,
        "repeat_return": t.repeat_return == sa.true(),
    }
    measures: list[Any] = [sa.func.count(), sa.func.sum(key)]
    for name in COUNT_FLAGS:
        measures += [sa.func.sum(sa.case((flags[name], 1), else_=0)), sa.func.sum(sa.case((flags[name], key), else_=0))]
    stmt = (sa.select(dim, *measures).where(_in_view(caller), t.origin_district == district)
            .group_by(sa.literal_column("1")))
    return list((await session.execute(stmt)).all()), base


# --- the writers -----------------------------------------------------------------------------


async def existing_departures(session: AsyncSession, agency: str, refs: Sequence[str]) -> dict[str, Departure]:
    """The sender's own departure records among ``refs`` (the batch writer compares with them)."""
    if not refs:
        return {}
    rows = await session.exec(select(Departure).where(col(Departure.source_agency) == agency,
                                                      col(Departure.source_ref).in_(refs)))
    return {d.source_ref: d for d in rows.all()}


async def departures_of_persons(session: AsyncSession, person_ids: Sequence[uuid.UUID]) -> list[Departure]:
    """Every departure of these persons, for the writer that refreshes their register rows."""
    ids = sorted(set(person_ids))
    out: list[Departure] = []
    for i in range(0, len(ids), 1000):
        out.extend((await session.exec(select(Departure).where(col(Departure.person_id).in_(ids[i : i + 1000])))).all())
    return out


async def flags_of(session: AsyncSession, person_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """``person_id -> repeat_return`` of the register rows of these persons that exist."""
    ids = sorted(set(person_ids))
    out: dict[uuid.UUID, bool] = {}
    for i in range(0, len(ids), 1000):
        rows = await session.execute(sa.select(col(RegisterPerson.person_id), col(RegisterPerson.repeat_return))
                                     .where(col(RegisterPerson.person_id).in_(ids[i : i + 1000])))
        out.update({r[0]: bool(r[1]) for r in rows.all()})
    return out


async def replace_persons(session: AsyncSession, person_ids: Sequence[uuid.UUID], rows: list[dict[str, Any]], *,
                          at_commit: bool = False) -> None:
    """The register rows of these persons, replaced by ``rows`` (one per person that still has
    records; the others' rows go). An upsert: two writers refreshing the same person one after
    the other (the second waits for the first's row) both succeed, the later sum standing.
    ``at_commit``: the upsert sent with the unit's COMMIT (:mod:`api.core.bulk`), when every
    person has a row."""
    table = table_of(RegisterPerson)
    kept = {r["person_id"] for r in rows}
    gone = sorted(set(person_ids) - kept)
    for i in range(0, len(gone), 1000):
        await session.execute(sa.delete(table).where(table.c.person_id.in_(gone[i : i + 1000])),
                              execution_options={"synchronize_session": False})
    await bulk.insert_rows(session, table, rows, on_conflict_update=["person_id"], at_commit=at_commit and not gone)
