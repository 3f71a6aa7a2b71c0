"""Statistics: counts of returnees and referrals, grouped in SQL, with small cells suppressed.

Suppression (protects victims from re-identification)
-----------------------------------------------------
* **Primary**: a cell with ``0 < count < threshold`` is published as ``count: null,
  suppressed: true``. Zero cells are simply absent (GROUP BY returns no row for them).
* **Complementary**: a suppressed cell must not be recoverable by subtraction from a total the
  caller can obtain (the reply's ``total``, or the same query with one dimension fewer). For
  every *line* of the table (all rows sharing the values of every dimension but one; with one
  dimension, the whole table) the suppressed cells of the line must be either none, or at least
  two whose sum is at least the threshold. While a line breaks that rule its smallest published
  cell is suppressed too; this repeats over all dimensions until nothing changes.
* ``total`` is the exact sum of every cell (the same figure a query without ``group_by``
  gives), null only when it is itself under the threshold.
* A referral row's ``overdue`` is null whenever its ``count`` is.

Not prevented: differencing across queries with different filters (say two date windows a day
apart), which needs query auditing (every call is audited with its filters for that reason);
and, in tables of two or more dimensions, a complementary cell that is alone in another line of
the table, whose count that line's total (a query with one dimension fewer) then shows. The
rule is a protection by lines, not an optimal (linear-programming) cell suppression.

The threshold is :attr:`api.settings.Settings.suppression_threshold`; a caller may ask for a
higher one, never a lower one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock
from api.core import audit
from api.core.access import in_jurisdiction
from api.core.context import Caller
from api.core.errors import ValidationFailed
from api.referrals.service import visible_to as referral_visible_to
from models import OPEN_STATUSES, Referral, Returnee

RETURNEE_DIMENSIONS = ("district", "month", "sex", "age_group", "returned_from_country", "return_type",
                       "trafficking_status")
REFERRAL_DIMENSIONS = ("status", "to_agency", "reason", "month", "urgency")
AGE_GROUPS = ("0-17", "18-24", "25-34", "35-44", "45-59", "60+", "unknown")


def parse_group_by(values: Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """``group_by`` repeated or as a comma list, duplicates dropped; an unknown name is a 422."""
    out: list[str] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in allowed:
                raise ValidationFailed(
                    "See 'errors' for the fields at fault",
                    errors=[{"field": "query.group_by", "message": f"'{part}' is not one of {', '.join(allowed)}"}],
                )
            if part not in out:
                out.append(part)
    return out


def effective_threshold(configured: int, asked: int | None) -> int:
    return max(configured, asked or 0)


# --- SQL expressions -------------------------------------------------------------------------


def _month(dialect: str, column: Any, timestamp: bool = False) -> sa.ColumnElement[str]:
    """``YYYY-MM`` of a date (or of a UTC timestamp)."""
    if dialect == "postgresql":
        value = sa.func.timezone("UTC", column) if timestamp else column
        return sa.func.to_char(value, "YYYY-MM")
    return sa.func.strftime("%Y-%m", column)


def _age_group(birth: Any, on: Any) -> sa.ColumnElement[str]:
    """The age group of someone born ``birth`` on the day ``on`` (whole years, birthday
    included), computed in SQL with EXTRACT (SQLite: strftime), the same on both databases."""

    def md(c: Any) -> Any:
        return sa.extract("month", c) * 100 + sa.extract("day", c)

    age = sa.extract("year", on) - sa.extract("year", birth) - sa.case((md(on) < md(birth), 1), else_=0)
    return sa.case(
        (birth.is_(None), "unknown"),
        (age < 0, "unknown"),
        (age < 18, "0-17"),
        (age < 25, "18-24"),
        (age < 35, "25-34"),
        (age < 45, "35-44"),
        (age < 60, "45-59"),
        else_="60+",
    )


# the stored columns each returnee dimension is computed from
_RETURNEE_SOURCES: dict[str, tuple[str, ...]] = {
    "district": ("origin_district",),
    "month": ("return_date",),
    "sex": ("sex",),
    "age_group": ("birth_date", "return_date"),
    "returned_from_country": ("returned_from_country",),
    "return_type": ("return_type",),
    "trafficking_status": ("trafficking_status",),
}


def _returnee_dimension(name: str, dialect: str, c: Any) -> Any:
    """The SQL value of dimension ``name`` over the columns ``c`` (the table's, or a subquery's)."""
    if name == "district":
        return c.origin_district
    if name == "month":
        return _month(dialect, c.return_date)
    if name == "age_group":
        return _age_group(c.birth_date, c.return_date)
    return getattr(c, name)


def _returnees_in_jurisdiction(caller: Caller) -> sa.ColumnElement[bool]:
    """Returnees whose origin lies in the caller's jurisdiction (only that: a record the
    caller's agency sent about another district is not its district's figure).
    ``origin_district`` is always a district code of the reference (the batch validates it), so a
    district caller is one equality on the leading column of the (origin_district, return_date)
    index, a province caller a prefix of it, and a sub-district caller is matched on
    ``origin_subdistrict``."""
    depth = caller.jurisdiction.count(".")
    if depth == 1:
        return col(Returnee.origin_district) == caller.jurisdiction
    if depth == 0:
        return in_jurisdiction(caller, col(Returnee.origin_district))
    return in_jurisdiction(caller, col(Returnee.origin_subdistrict))


# --- suppression -----------------------------------------------------------------------------


def suppressed_cells(keys: Sequence[tuple[Any, ...]], counts: Sequence[int], threshold: int) -> set[int]:
    """Indexes of the cells to suppress: primary, then complementary (see the module docstring)."""
    sup = {i for i, c in enumerate(counts) if 0 < c < threshold}
    if not sup:
        return sup
    ndim = len(keys[0]) if keys else 0
    changed = True
    while changed:
        changed = False
        for d in range(max(ndim, 1)):
            lines: dict[tuple[Any, ...], list[int]] = defaultdict(list)
            for i, k in enumerate(keys):
                lines[k[:d] + k[d + 1:]].append(i)
            for members in lines.values():
                hidden = [i for i in members if i in sup]
                if not hidden or (len(hidden) >= 2 and sum(counts[i] for i in hidden) >= threshold):
                    continue
                shown = sorted((i for i in members if i not in sup), key=lambda i: (counts[i], i))
                if shown:
                    sup.add(shown[0])
                    changed = True
    return sup


@dataclass
class Table:
    group_by: list[str]
    threshold: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    extra: tuple[str, ...] = ()  # per-row counts published beside ``count`` (``overdue``)


def _table(group_by: list[str], threshold: int, result: Sequence[Sequence[Any]], extra: tuple[str, ...] = ()) -> Table:
    n = len(group_by)
    data = sorted(((tuple(r[:n]), int(r[n]), [int(x or 0) for x in r[n + 1:]]) for r in result),
                  key=lambda t: tuple((v is None, str(v)) for v in t[0]))
    data = [d for d in data if d[1] > 0]  # without group_by, an empty set still gives one row of 0
    keys = [k for k, _, _ in data]
    counts = [c for _, c, _ in data]
    sup = suppressed_cells(keys, counts, threshold)
    rows = []
    for i, (k, c, more) in enumerate(data):
        row: dict[str, Any] = {name: str(v) if v is not None else None for name, v in zip(group_by, k)}
        hidden = i in sup
        row["count"] = None if hidden else c
        for name, value in zip(extra, more):
            row[name] = None if hidden else value
        row["suppressed"] = hidden
        rows.append(row)
    total = sum(counts)
    return Table(group_by, threshold, rows, None if 0 < total < threshold else total, extra)


def _filters_for_audit(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else str(v)) for k, v in filters.items() if v is not None}


# --- queries ---------------------------------------------------------------------------------


async def returnee_stats(
    session: AsyncSession, caller: Caller, group_by: list[str], threshold: int, *,
    since: date | None = None, until: date | None = None, district: str | None = None,
    return_type: str | None = None, trafficking_status: str | None = None,
) -> Table:
    """Returnees of the caller's jurisdiction counted by ``group_by`` (one GROUP BY statement)."""
    dialect = session.bind.dialect.name
    conditions = [_returnees_in_jurisdiction(caller)]
    if district:
        conditions.append(col(Returnee.origin_district) == district)
    if since:
        conditions.append(col(Returnee.return_date) >= since)
    if until:
        conditions.append(col(Returnee.return_date) <= until)
    if return_type:
        conditions.append(col(Returnee.return_type) == str(return_type))
    if trafficking_status:
        conditions.append(col(Returnee.trafficking_status) == str(trafficking_status))
    table_cols = Returnee.__table__.c  # type: ignore[attr-defined]
    if "month" in group_by and "age_group" not in group_by:
        # Formatting the month of every row is the costly part (to_char is 3x a bare GROUP BY on
        # PostgreSQL): count by the stored columns first (an index-only scan of (origin_district,
        # return_date) for district x month), then format the far fewer groups.
        sources = list(dict.fromkeys(src for name in group_by for src in _RETURNEE_SOURCES[name]))
        inner = (sa.select(*(table_cols[src] for src in sources), sa.func.count().label("n"))
                 .where(*conditions).group_by(*(table_cols[src] for src in sources)).subquery("g"))
        dims = [_returnee_dimension(name, dialect, inner.c).label(name) for name in group_by]
        stmt = sa.select(*dims, sa.func.sum(inner.c.n).label("count"))
    else:
        dims = [_returnee_dimension(name, dialect, table_cols).label(name) for name in group_by]
        stmt = sa.select(*dims, sa.func.count().label("count")).select_from(Returnee).where(*conditions)
    if dims:
        # by position: the same expression written twice with bound parameters is, to PostgreSQL,
        # two different expressions
        stmt = stmt.group_by(*(sa.literal_column(str(i + 1)) for i in range(len(dims))))
    result = (await session.execute(stmt)).all()
    table = _table(group_by, threshold, result)
    audit.record(session, "stats.returnees", resource_type="stats", group_by=group_by, threshold=threshold,
                 filters=_filters_for_audit({"from": since, "to": until, "district": district,
                                             "return_type": return_type,
                                             "trafficking_status": trafficking_status}))
    return table


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def referral_stats(
    session: AsyncSession, caller: Caller, group_by: list[str], threshold: int, *,
    since: date | None = None, until: date | None = None, status: str | None = None,
    to_agency: str | None = None, reason: str | None = None, urgency: str | None = None,
) -> Table:
    """Referrals the caller may see (the referral visibility rule) counted by ``group_by``,
    each row with how many of them are overdue (open and past ``due_at``) now."""
    dialect = session.bind.dialect.name
    r = Referral
    exprs: dict[str, Any] = {
        "status": col(r.status),
        "to_agency": col(r.to_agency),
        "reason": col(r.reason),
        "urgency": col(r.urgency),
    }
    dims = [(_month(dialect, col(r.created_at), timestamp=True) if n == "month" else exprs[n]).label(n)
            for n in group_by]
    overdue = sa.func.sum(sa.case(
        (sa.and_(col(r.status).in_(sorted(s.value for s in OPEN_STATUSES)), col(r.due_at) < clock.now()), 1),
        else_=0))
    stmt = sa.select(*dims, sa.func.count().label("count"), overdue.label("overdue")).select_from(Referral).where(
        referral_visible_to(caller))
    if since:
        stmt = stmt.where(col(r.created_at) >= _start_of(since))
    if until:
        stmt = stmt.where(col(r.created_at) < _start_of(until + timedelta(days=1)))
    for column, value in ((r.status, status), (r.to_agency, to_agency), (r.reason, reason), (r.urgency, urgency)):
        if value:
            stmt = stmt.where(col(column) == str(value))
    if dims:
        stmt = stmt.group_by(*(sa.literal_column(str(i + 1)) for i in range(len(dims))))
    result = (await session.execute(stmt)).all()
    table = _table(group_by, threshold, result, extra=("overdue",))
    audit.record(session, "stats.referrals", resource_type="stats", group_by=group_by, threshold=threshold,
                 filters=_filters_for_audit({"from": since, "to": until, "status": status,
                                             "to_agency": to_agency, "reason": reason, "urgency": urgency}))
    return table
