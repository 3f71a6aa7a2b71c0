"""``/v1/stats``: aggregate figures for the agencies that report on trafficking (DP3A, the task
force), with small cells suppressed so that no victim can be singled out."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from api.http import auth
from api.http.session import SessionDep, services
from api.stats import service
from api.stats.schemas import StatsReply
from models import ReferralReason, ReferralStatus, ReturnType, TraffickingStatus, Urgency

router = APIRouter(prefix="/v1/stats", tags=["statistics"])

_CSV_INJECTION = ("=", "+", "-", "@", "\t", "\r")

GroupBy = Annotated[list[str] | None, Query(
    description="dimensions to count by; repeat the parameter or give a comma list")]
Threshold = Annotated[int | None, Query(
    ge=1, description="a higher suppression threshold than the configured one; a lower one is ignored")]
From = Annotated[date | None, Query(alias="from", description="on or after this day")]
To = Annotated[date | None, Query(alias="to", description="on or before this day")]

_SUPPRESSION = (
    " Cells with a count from 1 to `threshold` - 1 come back as `count: null, suppressed: true`; so that "
    "no suppressed cell can be recovered by subtraction, in every line of the table (rows alike in all "
    "dimensions but one) further cells, smallest first, are suppressed until the suppressed cells of the "
    "line are none, or at least two adding up to at least `threshold`. `total` is the sum of all cells "
    "(null when itself under `threshold`). `threshold` may be raised, never lowered, by the caller. "
    "`Accept: text/csv` gives the rows as CSV (suppressed counts empty). Every call is audited."
)


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "").lower()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_CSV_INJECTION) else text


def _reply(request: Request, table: service.Table) -> Response:
    if not _wants_csv(request):
        body = StatsReply(group_by=table.group_by, threshold=table.threshold, rows=table.rows, total=table.total)
        return JSONResponse(body.model_dump(mode="json"), headers={"Vary": "Accept"})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = [*table.group_by, "count", *table.extra, "suppressed"]
    writer.writerow(header)
    for row in table.rows:
        writer.writerow([_csv_cell(row[name]) for name in header])
    return Response(out.getvalue(), media_type="text/csv", headers={"Vary": "Accept"})


_RETURNEES = (
    "Counts of returnees whose origin lies in your jurisdiction, grouped by any of `district` (origin "
    "district code), `month` (of `return_date`, `YYYY-MM`), `sex`, `age_group` (age on the return date: "
    "`0-17`, `18-24`, `25-34`, `35-44`, `45-59`, `60+`, `unknown`), `returned_from_country`, `return_type`, "
    "`trafficking_status`. Filters: `from` / `to` (return date, inclusive), `district`, `return_type`, "
    "`trafficking_status`." + _SUPPRESSION
)
_REFERRALS = (
    "Counts of the referrals you may see (those your agency sent or received; for an oversight agency, every "
    "referral touching its jurisdiction), grouped by any of `status`, `to_agency`, `reason`, `month` (of "
    "`created_at`, UTC, `YYYY-MM`), `urgency`. Each row also gives `overdue`: how many of them are open and "
    "past `due_at` now (null when `count` is). Filters: `from` / `to` (creation day, UTC, inclusive), "
    "`status`, `to_agency`, `reason`, `urgency`." + _SUPPRESSION
)


@router.get("/returnees", response_model=StatsReply, name="stats.returnees", description=_RETURNEES,
            responses={200: {"content": {"text/csv": {}}}})
async def returnee_stats(
    caller: auth.StatsRead,
    session: SessionDep,
    request: Request,
    group_by: GroupBy = None,
    threshold: Threshold = None,
    since: From = None,
    until: To = None,
    district: Annotated[str | None, Query(max_length=16, description="origin district code, `61.07`")] = None,
    return_type: ReturnType | None = None,
    trafficking_status: TraffickingStatus | None = None,
) -> Response:
    """Returnee counts of the caller's jurisdiction, small cells suppressed."""
    dims = service.parse_group_by(group_by, service.RETURNEE_DIMENSIONS)
    limit = service.effective_threshold(services(request).settings.suppression_threshold, threshold)
    table = await service.returnee_stats(session, caller, dims, limit, since=since, until=until, district=district,
                                         return_type=return_type, trafficking_status=trafficking_status)
    return _reply(request, table)


@router.get("/referrals", response_model=StatsReply, name="stats.referrals", description=_REFERRALS,
            responses={200: {"content": {"text/csv": {}}}})
async def referral_stats(
    caller: auth.StatsRead,
    session: SessionDep,
    request: Request,
    group_by: GroupBy = None,
    threshold: Threshold = None,
    since: From = None,
    until: To = None,
    status: ReferralStatus | None = None,
    to_agency: Annotated[str | None, Query(max_length=64)] = None,
    reason: ReferralReason | None = None,
    urgency: Urgency | None = None,
) -> Response:
    """Referral counts (with overdue) of what the caller may see, small cells suppressed."""
    dims = service.parse_group_by(group_by, service.REFERRAL_DIMENSIONS)
    limit = service.effective_threshold(services(request).settings.suppression_threshold, threshold)
    table = await service.referral_stats(session, caller, dims, limit, since=since, until=until, status=status,
                                         to_agency=to_agency, reason=reason, urgency=urgency)
    return _reply(request, table)

