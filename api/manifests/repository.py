"""Manifest queries, in one place: who may see which manifest and which of its people.

:func:`readable_persons` is THE rule for the people of a manifest: the agency that registered
the manifest; the agencies that see the whole province of that agency
(:func:`api.core.access.taken_in`: the province, its task force); and agencies whose
jurisdiction covers the person's origin district or sub-district (the home district, in
Kalimantan Barat or, once registered, elsewhere). :func:`readable` is the manifests with at
least one person the caller may see, or registered by its agency: another district sees
neither the manifest nor its people (a 404).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import pagination, preconditions
from api.core.access import in_jurisdiction, taken_in, visible_or_404
from api.core.context import Caller
from api.core.pagination import Position, Slice
from models import Manifest, ManifestPerson, ManifestPersonStatus

_PERSONS: sa.Table = ManifestPerson.__table__  # type: ignore[attr-defined]
_AWAITING = (ManifestPersonStatus.arrived, ManifestPersonStatus.not_located)
OVERDUE = timedelta(days=7)  # "not located after 7 days"


def _sees_person(caller: Caller) -> sa.ColumnElement[bool]:
    return sa.or_(
        col(Manifest.created_by) == caller.agency,
        taken_in(caller, col(Manifest.created_by)),
        in_jurisdiction(caller, col(ManifestPerson.origin_district)),
        in_jurisdiction(caller, col(ManifestPerson.origin_subdistrict)),
    )


def readable_persons(caller: Caller) -> Any:
    """``(person, manifest)`` rows of the people ``caller`` may see. The one place that decides it."""
    return (select(ManifestPerson, Manifest)
            .join(Manifest, col(Manifest.id) == col(ManifestPerson.manifest_id))
            .where(_sees_person(caller)))


def readable(caller: Caller) -> SelectOfScalar[Manifest]:
    """The manifests ``caller`` may see: its agency's, or with one person it may see."""
    person = (sa.select(sa.literal(1)).select_from(_PERSONS)
              .where(_PERSONS.c.manifest_id == col(Manifest.id),
                     sa.or_(in_jurisdiction(caller, _PERSONS.c.origin_district),
                            in_jurisdiction(caller, _PERSONS.c.origin_subdistrict))))
    return select(Manifest).where(sa.or_(col(Manifest.created_by) == caller.agency,
                                         taken_in(caller, col(Manifest.created_by)), person.exists()))


async def get_readable(session: AsyncSession, caller: Caller, manifest_id: uuid.UUID) -> Manifest:
    return await visible_or_404(session, readable(caller).where(col(Manifest.id) == manifest_id), "manifest")


async def persons_of(session: AsyncSession, caller: Caller, manifest_id: uuid.UUID) -> list[ManifestPerson]:
    """The people of the manifest ``caller`` may see, in the letter's order."""
    stmt = readable_persons(caller).where(col(ManifestPerson.manifest_id) == manifest_id)
    rows = (await session.exec(stmt.order_by(col(ManifestPerson.position)))).all()
    return [p for p, _ in rows]


async def get_person(
    session: AsyncSession, caller: Caller, manifest_id: uuid.UUID, person_id: uuid.UUID
) -> tuple[ManifestPerson, Manifest]:
    stmt = readable_persons(caller).where(col(ManifestPerson.id) == person_id,
                                          col(ManifestPerson.manifest_id) == manifest_id)
    row = await visible_or_404(session, stmt, "person on this manifest")
    return row[0], row[1]


async def readable_page(session: AsyncSession, caller: Caller, *, after: Position | None,
                        limit: int) -> Slice[Manifest]:
    keys = [col(Manifest.created_at), col(Manifest.id)]
    return await pagination.read_page(session, readable(caller), keys, after, limit, descending=True)


async def week_page(
    session: AsyncSession,
    caller: Caller,
    view: str,
    *,
    today: date,
    week: tuple[date, date],
    district: str | None,
    after: Position | None,
    limit: int,
) -> Slice[tuple[ManifestPerson, Manifest]]:
    """A page of one of the district's lists (see :func:`api.manifests.service.week_list`)."""
    stmt = readable_persons(caller)
    day: Any
    if view == "expected_this_week":
        day = col(Manifest.expected_date)
        stmt = stmt.where(col(ManifestPerson.status) == ManifestPersonStatus.expected,
                          day >= week[0], day <= week[1])
    else:
        day = col(ManifestPerson.arrived_on)
        overdue_from = today - OVERDUE
        stmt = stmt.where(col(ManifestPerson.status).in_(_AWAITING))
        stmt = stmt.where(day > overdue_from if view == "arrived_not_located" else day <= overdue_from)
    if district is not None:
        stmt = stmt.where(col(ManifestPerson.origin_district) == district)
    keys = [day, col(ManifestPerson.id)]
    # the cursor holds the day as text (YYYY-MM-DD; sealed, so it is one this list made)
    start = None if after is None else (date.fromisoformat(after[0]), after[1])
    rows = (await session.exec(pagination.paged(stmt, keys, start, limit))).all()
    items = list(rows[:limit])
    more = len(rows) > limit and items
    nxt = None
    if more:
        last_person, last_manifest = items[-1]
        day_of = last_manifest.expected_date if view == "expected_this_week" else last_person.arrived_on
        nxt = (day_of.isoformat() if day_of else "", last_person.id)
    return Slice([(p, m) for p, m in items], nxt)


async def letter_registered(session: AsyncSession, agency: str, letter_ref: str) -> bool:
    """Whether ``agency`` already registered a manifest of this letter (its own rows)."""
    stmt = (sa.select(sa.literal(1)).select_from(Manifest)
            .where(col(Manifest.created_by) == agency, col(Manifest.letter_ref) == letter_ref).limit(1))
    return (await session.execute(stmt)).first() is not None


async def insert_persons(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(sa.insert(_PERSONS), list(rows))


async def bump_manifest(session: AsyncSession, manifest: Manifest, version: int, **values: Any) -> None:
    """A version on, if ``version`` is still the stored one (else 412); ``manifest`` follows."""
    new = await preconditions.bump(session, Manifest, manifest.id, version, **values)
    set_committed_value(manifest, "version", new)
    for attr, value in values.items():
        set_committed_value(manifest, attr, value)


async def bump_person(session: AsyncSession, person: ManifestPerson, version: int, **values: Any) -> None:
    new = await preconditions.bump(session, ManifestPerson, person.id, version, **values)
    set_committed_value(person, "version", new)
    for attr, value in values.items():
        set_committed_value(person, attr, value)


async def persons_by_id(session: AsyncSession, caller: Caller, manifest_id: uuid.UUID,
                        ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ManifestPerson]:
    """The people ``ids`` of the manifest that ``caller`` may see, by id."""
    stmt = readable_persons(caller).where(col(ManifestPerson.manifest_id) == manifest_id,
                                          col(ManifestPerson.id).in_(list(ids)))
    return {p.id: p for p, _ in (await session.exec(stmt)).all()}
