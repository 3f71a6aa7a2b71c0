"""Access rules: which rows a caller may see, and where it may write.

:func:`in_jurisdiction` is how every resource limits its queries to what the caller may see;
:func:`visible_or_404` runs such a query and makes "not found" and "not yours" the same 404,
exactly as if the object did not exist.

Who may write what where
------------------------
A write is filed under a region: a returnee record under its origin (its sub-district when
given, else its district), a notice under the district it is addressed to. :func:`may_write`
is the one rule for both: the region must lie in the writer's :func:`writable_region`, which is

* the agency's own jurisdiction, for every agency;
* the whole province of its jurisdiction for the border intake (:data:`BORDER_INTAKE_KINDS`,
  BP3MI): deportees of every district come home through its posts, and it tells each district.

People of other provinces
-------------------------
Deportees of every province come home through Kalimantan Barat's border posts. The border
intake files them under their real origin (``35.78``, Kota Surabaya) and tells their home
district (:func:`may_take_in`). Who reads such a record or notice, filed outside the province
of the agency that took it in (:func:`taken_in`): that agency, agencies whose jurisdiction
covers the origin (the home district, once it is registered), and the agencies of the intake
province that see the whole province (jurisdiction ``61``: the province, its task force).
Nobody else in the province: a district of Kalimantan Barat does not read them.

The scopes say *what* a caller may write; this says *where*. A write outside is refused with
:class:`OutsideJurisdiction` (403, naming the field at fault); a batch of returnees rejects
only its records outside, each with an error on ``origin_district``. Referrals are not filed
under a region the sender writes into: they go to the one agency they name, wherever it is
(see :mod:`api.referrals.service`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core import db
from api.core.context import Caller
from api.core.errors import NotFound, Problem
from models import Agency, AgencyKind
from models.regions import covers, province_of

#: Agencies that may write for every district of their province (BP3MI, the border intake).
_AGENCY: sa.Table = Agency.__table__  # type: ignore[attr-defined]

BORDER_INTAKE_KINDS = frozenset({AgencyKind.migrant_protection})


def in_jurisdiction(caller: Caller, column: Any) -> sa.ColumnElement[bool]:
    """SQL condition: ``column`` (a region code) lies in the caller's jurisdiction."""
    j = caller.jurisdiction
    return sa.or_(column == j, column.startswith(j + ".", autoescape=True))


def taken_in(caller: Caller, agency_column: Any) -> sa.ColumnElement[bool]:
    """SQL condition: ``agency_column`` (the agency that took a record in, or issued a notice)
    is an agency of the caller's province, and the caller sees the whole province (its
    jurisdiction is a province). What lets the province read the records of people of other
    provinces taken in by its border intake (see the module's rule); false for anyone else."""
    if "." in caller.jurisdiction:
        return sa.false()
    return agency_column.in_(sa.select(_AGENCY.c.code).where(
        in_jurisdiction(caller, _AGENCY.c.jurisdiction)))


T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)


async def visible_or_404(session: AsyncSession, stmt: SelectOfScalar[T], what: str = "resource") -> T:
    """Run a query already limited to what the caller may see; nothing found is a 404."""
    obj = (await session.exec(stmt)).first()
    if obj is None:
        raise NotFound(f"No such {what}")
    return obj


async def shown_by_id(session: AsyncSession, caller: Caller, readable: Callable[[Caller], SelectOfScalar[M]],
                     id: Any, what: str = "resource") -> M:
    """:func:`visible_or_404` of ``readable(caller)`` and the object ``id``, for an object only
    shown in the reply: read at the driver, a copy not in the session (:func:`api.core.db.copies`;
    about a quarter of the CPU of the ORM's load)."""
    found = await db.copies(session, _by_id(readable, dataclasses.replace(caller, token_id="")), id=id)
    if not found:
        raise NotFound(f"No such {what}")
    return found[0]


@lru_cache(maxsize=1024)
def _by_id(readable: Callable[[Caller], SelectOfScalar[M]], caller: Caller) -> SelectOfScalar[M]:
    """``readable(caller)`` limited to the object of the ``id`` given at each call, built once
    for this caller and kept (a statement never changes; one run again is not compiled or keyed
    again: :func:`api.core.db.rows`). Kept by everything of the caller a readable statement may
    depend on but the token it came with: another token of the same client uses it too."""
    stmt = readable(caller)
    model: Any = stmt.column_descriptions[0]["entity"]
    return stmt.where(model.id == sa.bindparam("id", type_=sa.Uuid())).limit(1)


# --- where a caller may write ------------------------------------------------------------------


class OutsideJurisdiction(Problem):
    status, slug, title = 403, "outside-jurisdiction", "Outside the caller's jurisdiction"


def writable_region(caller: Caller) -> str:
    """The region ``caller`` may write in: its jurisdiction, or its province for the border
    intake (:data:`BORDER_INTAKE_KINDS`)."""
    if caller.agency_kind in BORDER_INTAKE_KINDS:
        return province_of(caller.jurisdiction) or caller.jurisdiction
    return caller.jurisdiction


def may_write(caller: Caller, region: str | None) -> bool:
    """Whether ``caller`` may write a record filed under ``region`` (a region code). The one
    place that decides it (see the module's rule)."""
    return covers(writable_region(caller), region)


def may_take_in(caller: Caller, region: str | None) -> bool:
    """Whether ``caller`` may file a returnee record, or address a notice, under ``region``:
    where it may write (:func:`may_write`), and for the border intake also any region outside
    its own province (people of other provinces come through its posts)."""
    if may_write(caller, region):
        return True
    return (caller.agency_kind in BORDER_INTAKE_KINDS and region is not None
            and not covers(province_of(caller.jurisdiction), region))


def check_take_in(caller: Caller, region: str | None, field: str) -> None:
    """:func:`check_write` for :func:`may_take_in`."""
    if region is not None and not may_take_in(caller, region):
        message = outside_message(caller, region)
        raise OutsideJurisdiction(f"Your agency may not write for {region}",
                                  errors=[{"field": field, "message": message}])


def outside_message(caller: Caller, region: str) -> str:
    """Why a write under ``region`` is refused, for the field error."""
    return f"{region} is outside the region your agency may write for ({writable_region(caller)})"


def check_write(caller: Caller, region: str | None, field: str) -> None:
    """:class:`OutsideJurisdiction` naming ``field`` unless ``caller`` may write under ``region``."""
    if region is not None and not may_write(caller, region):
        message = outside_message(caller, region)
        raise OutsideJurisdiction(f"Your agency may not write for {region}",
                                  errors=[{"field": field, "message": message}])


# --- who is alerted to a recruiter --------------------------------------------------------------

#: Agencies alerted to a recruiter reported in their jurisdiction, and who read the alerts and
#: the reports behind them: the police and the task force (api.alerts).
ALERTED_KINDS = frozenset({AgencyKind.police, AgencyKind.task_force})


def is_alerted(kind: AgencyKind | str, jurisdiction: str, regions: Iterable[str]) -> bool:
    """Whether an agency of ``kind`` and ``jurisdiction`` is alerted to (and may read) what was
    reported in any of ``regions``. The one rule, for the feed's audience and for the reads."""
    return kind in ALERTED_KINDS and any(covers(jurisdiction, r) for r in regions)


def alerted_over(caller: Caller, column: Any) -> sa.ColumnElement[bool]:
    """SQL condition: :func:`is_alerted` for ``caller`` of the region in ``column``."""
    if caller.agency_kind not in ALERTED_KINDS:
        return sa.false()
    return in_jurisdiction(caller, column)
