"""What the console's pages show, gathered from the API's own services (stats, notices, referrals,
audit), so every figure obeys the same jurisdiction and small-cell rules and equals the API's."""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock
from api.core.context import Caller
from api.core.scopes import Scope
from api.manifests import service as manifests
from api.notices import service as notices
from api.referrals import service as referrals
from api.referrals import workflow
from api.referrals.repository import ReferralQuery
from api.register import service as register
from api.stats import service as stats
from models import OPEN_STATUSES, Notice, Referral
from models.regions import children, covers, regions

PAGE = 200  # rows per call when the console walks a list to its end
MAX_MONTHS = 36


def region_name(code: str | None) -> str:
    region = regions().get(code or "")
    return region.name if region else ""


def districts_of(caller: Caller) -> list[str]:
    """The district codes the caller's jurisdiction covers (a district agency: its own)."""
    return sorted(c for c, r in regions().items() if r.level == "district" and
                  (covers(caller.jurisdiction, c) or covers(c, caller.jurisdiction)))


# --- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    first: str  # YYYY-MM
    last: str

    @property
    def since(self) -> date:
        y, m = map(int, self.first.split("-"))
        return date(y, m, 1)

    @property
    def until(self) -> date:
        y, m = map(int, self.last.split("-"))
        return date(y, m, calendar.monthrange(y, m)[1])

    def months(self) -> list[str]:
        y, m = map(int, self.first.split("-"))
        out: list[str] = []
        while f"{y:04d}-{m:02d}" <= self.last and len(out) < MAX_MONTHS:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def parse_month(value: str | None) -> str | None:
    if not value or len(value) != 7 or value[4] != "-":
        return None
    try:
        y, m = int(value[:4]), int(value[5:])
    except ValueError:
        return None
    return f"{y:04d}-{m:02d}" if 2000 <= y <= 2100 and 1 <= m <= 12 else None


def shift(month: str, n: int) -> str:
    y, m = map(int, month.split("-"))
    k = y * 12 + (m - 1) + n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


async def default_period(session: AsyncSession, caller: Caller, threshold: int) -> Period:
    """Six months ending with the latest month the caller's figures have (the API's own
    monthly counts say which); the current six months when there are none."""
    table = await stats.returnee_stats(session, caller, ["month"], threshold)
    months = [r["month"] for r in table.rows if r["month"]]
    last = max(months) if months else clock.now().strftime("%Y-%m")
    return Period(shift(last, -5), last)


def period_of(first: str | None, last: str | None) -> Period | None:
    a, b = parse_month(first), parse_month(last)
    if a is None or b is None:
        return None
    if a > b:
        a, b = b, a
    if len(Period(a, b).months()) >= MAX_MONTHS:
        a = shift(b, -(MAX_MONTHS - 1))
    return Period(a, b)


# --- the province's overview -------------------------------------------------------------------


@dataclass
class Grid:
    """Returnees by district x month: every district of the jurisdiction and every month of the
    period present; a cell is a count, 0 (no row in the API's reply: none), or ``None``
    (suppressed: fewer than the threshold)."""

    period: Period
    districts: list[str]
    months: list[str]
    cells: dict[tuple[str, str], int | None]
    threshold: int
    rounding_base: int
    total: int | None
    suspected: dict[str, int | None] = field(default_factory=dict)

    def row_total(self, district: str) -> int:
        return sum(v or 0 for m in self.months if (v := self.cells[(district, m)]) is not None)

    def month_total(self, month: str) -> int:
        return sum(v or 0 for d in self.districts if (v := self.cells[(d, month)]) is not None)

    def suppressed_in(self, district: str) -> int:
        return sum(1 for m in self.months if self.cells[(district, m)] is None)

async def returnee_grid(session: AsyncSession, caller: Caller, period: Period, threshold: int) -> Grid:
    """``GET /v1/stats/returnees?group_by=district,month&from=…&to=…`` laid out as a full grid,
    with ``…?group_by=district&trafficking_status=possible`` beside it (suspected victims)."""
    table = await stats.returnee_stats(session, caller, ["district", "month"], threshold,
                                       since=period.since, until=period.until)
    months = period.months()
    districts = districts_of(caller)
    seen = {r["district"] for r in table.rows if r["district"]}
    districts = sorted(set(districts) | seen)
    cells: dict[tuple[str, str], int | None] = {(d, m): 0 for d in districts for m in months}
    for row in table.rows:
        key = (row["district"], row["month"])
        if key in cells:
            cells[key] = row["count"]
    suspected_table = await stats.returnee_stats(session, caller, ["district"], threshold, since=period.since,
                                                 until=period.until, trafficking_status="possible")
    suspected: dict[str, int | None] = {d: 0 for d in districts}
    for row in suspected_table.rows:
        if row["district"] in suspected:
            suspected[row["district"]] = row["count"]
    return Grid(period, districts, months, cells, table.threshold, table.base, table.total, suspected)


async def all_notices(session: AsyncSession, caller: Caller, *, acknowledged: bool | None) -> list[Notice]:
    """Every notice the caller may read (``GET /v1/notices``, walked to its end)."""
    out: list[Notice] = []
    after = None
    while True:
        page = await notices.list_notices(session, caller, acknowledged=acknowledged, after=after, limit=PAGE)
        out.extend(page.items)
        if page.next is None or not page.items:
            return out
        after = page.next


async def unacknowledged_by_district(session: AsyncSession, caller: Caller) -> Counter[str]:
    return Counter(n.district for n in await all_notices(session, caller, acknowledged=False))


@dataclass
class DistrictReferrals:
    """Referrals open now and how many of them are overdue, per district:
    ``GET /v1/stats/referrals?group_by=district&open=true`` (whenever they were made: an old
    referral still open is the one to chase), with every district of the jurisdiction present
    (0: no row in the API's reply, none), the districts outside it that the reply names after
    them, and the district not known (``None``) last; a cell is ``None`` when the API suppressed
    it. ``total`` and ``total_overdue`` are the API's reply without ``group_by`` (cells of their
    own, not sums of the rows). ``as_of``: when they were counted."""

    as_of: datetime
    districts: list[str | None]
    open: dict[str | None, int | None]
    overdue: dict[str | None, int | None]
    threshold: int
    rounding_base: int
    total: int | None
    total_overdue: int | None

async def referrals_by_district(session: AsyncSession, caller: Caller, threshold: int) -> DistrictReferrals:
    """The referrals open now, per district of the person referred, with how many of them are
    overdue: the API's figures, laid out for people."""
    as_of = clock.now()
    table = await stats.referral_stats(session, caller, ["district"], threshold, open_=True)
    named = {r["district"] for r in table.rows}
    own = districts_of(caller)
    districts: list[str | None] = [*own, *sorted(d for d in named if d is not None and d not in own)]
    if None in named:
        districts.append(None)
    open_: dict[str | None, int | None] = dict.fromkeys(districts, 0)
    overdue: dict[str | None, int | None] = dict.fromkeys(districts, 0)
    for row in table.rows:
        open_[row["district"]], overdue[row["district"]] = row["count"], row["overdue"]
    return DistrictReferrals(as_of, districts, open_, overdue, table.threshold, table.base, table.total,
                             table.extra_totals.get("overdue", 0))


async def referral_rows(session: AsyncSession, caller: Caller, period: Period, threshold: int) -> list[dict[str, Any]]:
    """``GET /v1/stats/referrals?group_by=to_agency,status`` for the period, as the API replies."""
    table = await stats.referral_stats(session, caller, ["to_agency", "status"], threshold,
                                       since=period.since, until=period.until)
    return table.rows


# --- a district office's week ------------------------------------------------------------------


async def all_referrals(session: AsyncSession, caller: Caller, *, role: str | None,
                        open_only: bool = True) -> list[Referral]:
    """Referrals the caller may see (``GET /v1/referrals?role=…&status=…``), walked to the end."""
    out: list[Referral] = []
    after = None
    statuses = sorted(OPEN_STATUSES) if open_only else []
    while True:
        items, nxt = await referrals.list_referrals(session, caller, ReferralQuery(
            role=role, status=list(statuses), sort="due_at", limit=PAGE, after=after))
        out.extend(items)
        if nxt is None or not items:
            return out
        after = nxt


def moves_for(caller: Caller, ref: Referral) -> list[str]:
    """The moves the caller may make on ``ref`` now (the state machine's, and its scope)."""
    party = referrals.party_of(caller, ref)
    if party is None:
        return []
    return [a for a in workflow.allowed_actions(ref.status, party)
            if caller.has(workflow.required_scope(workflow.Action(a)))]


def overdue(ref: Referral) -> bool:
    return workflow.is_overdue(ref.status, ref.due_at, clock.now())


@dataclass
class Week:
    to_acknowledge: list[Notice]
    acknowledged: list[Notice]
    referrals: list[Referral]
    due_soon: int
    overdue: int


async def week(session: AsyncSession, caller: Caller) -> Week:
    to_ack: list[Notice] = []
    done: list[Notice] = []
    if caller.has(Scope.notices_read):
        to_ack = [n for n in await all_notices(session, caller, acknowledged=False)
                  if notices.is_addressee(caller, n)]
        done = [n for n in await all_notices(session, caller, acknowledged=True)
                if notices.is_addressee(caller, n)][:20]
    refs: list[Referral] = []
    if caller.has(Scope.referrals_read):
        refs = await all_referrals(session, caller, role="received")
    now = clock.now()
    late = sum(1 for r in refs if overdue(r))
    soon = sum(1 for r in refs if not overdue(r) and (r.due_at - now).days < 7)
    return Week(to_ack, done, refs, soon, late)


# --- arrivals (the manifests' week lists) and the register ------------------------------------

# ``GET /v1/manifests/persons?view=…``: the lists of the district's week, in the page's order.
WEEK_VIEWS = ("expected_this_week", "arrived_not_located", "not_located_after_7_days")


async def week_people(session: AsyncSession, caller: Caller) -> dict[str, list[dict[str, Any]]]:
    """Each of :data:`WEEK_VIEWS` as the API replies it to the caller (walked to its end):
    the same people, masked the same way, audited the same way."""
    out: dict[str, list[dict[str, Any]]] = {}
    for view in WEEK_VIEWS:
        rows: list[dict[str, Any]] = []
        after = None
        while True:
            items, nxt = await manifests.week_list(session, caller, view, district=None, after=after, limit=PAGE)
            rows.extend(items)
            if nxt is None or not items:
                break
            after = nxt
        out[view] = rows
    return out


def villages_of(code: str | None) -> list[tuple[str, str]]:
    """The desa / kelurahan under a sub-district or district (code, name), for the locate form."""
    if not code:
        return []
    out: list[tuple[str, str]] = []
    stack = [code]
    tree = children()
    while stack:
        for r in tree.get(stack.pop(), ()):
            if r.level == "village":
                out.append((r.code, r.name))
            else:
                stack.append(r.code)
    return sorted(out)


REGISTER_COLUMNS = ("persons", "departed", "abroad", "returned", "deported", "repeat_return")


async def register_counts(session: AsyncSession, caller: Caller, district: str, threshold: int) -> dict[str, Any]:
    """``GET /v1/register/counts?by=subdistrict&district=…``, as the API replies (protected)."""
    return await register.counts(session, caller, district, "subdistrict", threshold)
