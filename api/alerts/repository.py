"""Recruitment report and alert queries, in one place.

:func:`readable` is THE rule for alerts: the police and task force over the region of any
report of its identifier (:func:`api.core.access.alerted_over`). Reports are not read back as
such: an alert shows what its reports say (:func:`sources_of`), to those who may read the alert. The public warning list (:func:`warning_groups`) reads only the modus,
the region codes, the destination and the months, never a person, an identifier or a text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import pagination
from api.core.access import ALERTED_KINDS, alerted_over, visible_or_404
from api.core.context import Caller
from api.core.pagination import Position, Slice
from models import Agency, RecruiterIdentifier, RecruiterLink, RecruitmentAlert, RecruitmentReport


def readable(caller: Caller) -> SelectOfScalar[RecruitmentAlert]:
    """The alerts ``caller`` may read. The one place that decides it."""
    i, r = RecruiterIdentifier, RecruitmentReport
    over = (sa.select(sa.literal(1)).select_from(i).join(r, col(r.id) == col(i.report_id))
            .where(col(i.kind) == col(RecruitmentAlert.kind), col(i.value_index) == col(RecruitmentAlert.value_index),
                   alerted_over(caller, col(r.region))))
    return select(RecruitmentAlert).where(over.exists())


async def alerts_page(session: AsyncSession, caller: Caller, *, after: Position | None,
                      limit: int) -> Slice[RecruitmentAlert]:
    keys = [col(RecruitmentAlert.raised_at), col(RecruitmentAlert.id)]
    return await pagination.read_page(session, readable(caller), keys, after, limit, descending=True)


async def get_alert(session: AsyncSession, caller: Caller, alert_id: uuid.UUID) -> RecruitmentAlert:
    return await visible_or_404(session, readable(caller).where(col(RecruitmentAlert.id) == alert_id), "alert")


@dataclass
class Sources:
    """The reports of one identifier: who reported it, where, which modus, who named it."""

    agencies: set[str]
    regions: set[str]
    modus: set[str]
    reports: int
    returnees: set[uuid.UUID]
    value_enc: str


async def sources_of(session: AsyncSession, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Sources]:
    """``(kind, value index) -> Sources`` over every report of these identifiers (the writer's
    count of independent sources; what an alert that may be read shows)."""
    out: dict[tuple[str, str], Sources] = {}
    if not pairs:
        return out
    i, r = RecruiterIdentifier, RecruitmentReport
    cond = sa.or_(*(sa.and_(col(i.kind) == k, col(i.value_index) == v) for k, v in pairs))
    rows = await session.execute(
        sa.select(col(i.kind), col(i.value_index), col(i.value_enc), col(r.id), col(r.reporting_agency),
                  col(r.region), col(r.modus)).join(r, col(r.id) == col(i.report_id)).where(cond)
        .order_by(col(r.created_at), col(r.id)))
    report_ids: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for kind, index, enc, rid, agency, region, modus in rows.all():
        key = (str(kind), index)
        s = out.setdefault(key, Sources(set(), set(), set(), 0, set(), enc))
        s.agencies.add(agency)
        s.regions.add(region)
        s.modus.add(str(modus))
        s.reports += 1
        report_ids.setdefault(rid, []).append(key)
    if report_ids:
        links = await session.execute(sa.select(col(RecruiterLink.report_id), col(RecruiterLink.returnee_id))
                                      .where(col(RecruiterLink.report_id).in_(list(report_ids))))
        for rid, returnee in links.all():
            for key in report_ids[rid]:
                out[key].returnees.add(returnee)
    return out


async def any_report(session: AsyncSession) -> bool:
    """Whether any report is stored (the demo loader loads its reports once)."""
    stmt = sa.select(sa.func.count()).select_from(RecruitmentReport)
    return bool((await session.execute(stmt)).scalar_one())


async def alert_of(session: AsyncSession, kind: str, index: str) -> RecruitmentAlert | None:
    """The writer's lookup: the alert of an identifier, if one was raised."""
    return (await session.exec(select(RecruitmentAlert).where(col(RecruitmentAlert.kind) == kind,
                                                              col(RecruitmentAlert.value_index) == index))).first()


async def alerted_agencies(session: AsyncSession) -> list[tuple[str, str, str]]:
    """``(code, kind, jurisdiction)`` of the agencies of an alerted kind (the writer filters them
    by :func:`api.core.access.is_alerted`)."""
    rows = await session.execute(sa.select(col(Agency.code), col(Agency.kind), col(Agency.jurisdiction))
                                 .where(col(Agency.kind).in_(sorted(str(k) for k in ALERTED_KINDS)))
                                 .order_by(col(Agency.code)))
    return [(r[0], r[1], r[2]) for r in rows.all()]


# --- the public warning list -----------------------------------------------------------------


@dataclass
class WarningGroup:
    modus: str
    region: str
    first: datetime
    last: datetime
    route: list[str]
    countries: list[str]


async def warning_groups(session: AsyncSession, threshold: int, *, after: Position | None,
                         limit: int) -> tuple[list[WarningGroup], Position | None]:
    """``(modus, region)`` reported by at least ``threshold`` distinct agencies, by modus and
    region, with the route codes and destination countries of their reports."""
    r = RecruitmentReport
    stmt: Any = (sa.select(col(r.modus).label("modus"), col(r.region).label("region"), sa.func.min(col(r.created_at)), sa.func.max(col(r.created_at)))
            .group_by(col(r.modus), col(r.region))
            .having(sa.func.count(sa.distinct(col(r.reporting_agency))) >= threshold))
    keys = [col(r.modus), col(r.region)]
    rows = (await session.execute(pagination.paged(stmt, keys, after, limit))).all()
    page = rows[:limit]
    nxt: Position | None = (str(page[-1][0]), page[-1][1]) if len(rows) > limit and page else None
    groups = [WarningGroup(str(m), g, first, last, [], []) for m, g, first, last in page]
    if groups:
        details = await session.execute(
            sa.select(col(r.modus), col(r.region), col(r.route), col(r.places), col(r.destination_country))
            .where(col(r.modus).in_(sorted({g.modus for g in groups})), col(r.region).in_(sorted({g.region for g in groups})))
            .order_by(col(r.created_at), col(r.id)))
        by_key = {(g.modus, g.region): g for g in groups}
        for m, g, route, places, country in details.all():
            group: Any = by_key.get((str(m), g))
            if group is None:
                continue
            for code in [*(route or []), *(places or [])]:
                if code not in group.route:
                    group.route.append(code)
            if country and country not in group.countries:
                group.countries.append(country)
    return groups, nxt
