"""``/v1/stats``: aggregate figures for the agencies that report on trafficking (DP3A, the task
force), rounded by cell key and with small cells suppressed, so that no victim can be singled
out, not even by subtracting one reply from another (the rule: :mod:`api.stats.service`)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from api.core.params import DAY_HELP, Day, District, district_codes
from api.http import auth
from api.http.openapi import enums
from api.http.session import SessionDep, services
from api.stats import service
from api.stats.schemas import StatsReply
from models import ReferralReason, ReferralStatus, ReturnType, TraffickingStatus, Urgency

router = APIRouter(prefix="/v1/stats", tags=["statistics"])

_CSV_INJECTION = ("=", "+", "-", "@", "\t", "\r")
# Bounds of the query parameters: a value beyond them is a 422 problem (not a failure further
# down: an integer beyond 64 bits cannot be written into the audit entry, a day after
# 9999-12-30 has no next day; days are bounded by api.core.params.Day, as in every route).
MAX_THRESHOLD = 1_000_000

GroupBy = Annotated[list[str] | None, Query(
    description="dimensions to count by; repeat the parameter or give a comma list")]
Threshold = Annotated[int | None, Query(
    ge=1, le=MAX_THRESHOLD,
    description=f"a higher suppression threshold than the configured one (at most {MAX_THRESHOLD}); a lower one "
    "is ignored")]
From = Annotated[Day | None, Query(alias="from", description="on or after this day; " + DAY_HELP)]
To = Annotated[Day | None, Query(alias="to", description="on or before this day; " + DAY_HELP)]

_SUPPRESSION = (
    " **Figures are perturbed**: every count (and `total`, and `overdue`) is the true count rounded to a "
    "multiple of `rounding_base` (the configured threshold, 5 by default), up or down at random with the chance of the "
    "remainder (unbiased, off by less than `rounding_base`), the draw fixed by the cell's records (a cell "
    "key), so the same cell has the same value in every reply. Cells with a true count from 1 to "
    "`threshold` - 1 (or rounded under `threshold`) come back as `count: null, suppressed: true`; no row "
    "means none. Sums and differences of published figures are multiples of `rounding_base`, so no "
    "suppressed count can be recovered by subtracting one reply from another; rows need not add up to "
    "`total`, which is rounded on its own. `threshold` may be raised, never lowered, by the caller. "
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
        body = StatsReply(group_by=table.group_by, threshold=table.threshold, rounding_base=table.base,
                          rows=table.rows, total=table.total)
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
    "Counts of the referrals touching your jurisdiction (sent from, addressed to, or about someone of a "
    "region in it) and those your agency sent or received, whatever the kind of your agency, grouped by any of "
    "`status`, `to_agency`, `reason`, `month` (of `created_at`, UTC, `YYYY-MM`), `urgency`, `district` (the "
    "district code of the person referred: the returnee's origin district, or the district an inline subject "
    "lives in, as recorded when the referral was made; null when not known). Grouping by `district` does not "
    "change which referrals are counted: a district agency also finds, under other districts, the referrals "
    "sent from or addressed to its district about people of elsewhere. Each row also gives `overdue`: how many "
    "of them are open and past `due_at` now, rounded as a cell of its own and never above `count` (null when "
    "`count` is, or when it is itself under the threshold). Filters: `from` / `to` (creation day, UTC, "
    "inclusive), `status`, `to_agency`, `reason`, `urgency`, `district`, `open` (`true`: only the open "
    "referrals, `requested`, `received`, `accepted`, `in-progress`, `on-hold`; `false`: only the closed ones)."
    " Open and overdue referrals per district: `group_by=district&open=true`." + _SUPPRESSION
)


@router.get("/returnees", response_model=StatsReply, name="stats.returnees", description=_RETURNEES,
            openapi_extra=enums(group_by=service.RETURNEE_DIMENSIONS, district=district_codes()),
            responses={200: {"content": {"text/csv": {}}}})
async def returnee_stats(
    caller: auth.StatsRead,
    session: SessionDep,
    request: Request,
    group_by: GroupBy = None,
    threshold: Threshold = None,
    since: From = None,
    until: To = None,
    district: Annotated[District | None, Query(description="origin district code, `61.07`; an unknown code is "
                                               "a 422")] = None,
    return_type: ReturnType | None = None,
    trafficking_status: TraffickingStatus | None = None,
) -> Response:
    """Returnee counts of the caller's jurisdiction, rounded by cell key, small cells suppressed."""
    dims = service.parse_group_by(group_by, service.RETURNEE_DIMENSIONS)
    limit = service.effective_threshold(services(request).settings.suppression_threshold, threshold)
    table = await service.returnee_stats(session, caller, dims, limit, since=since, until=until, district=district,
                                         return_type=return_type, trafficking_status=trafficking_status)
    return _reply(request, table)


@router.get("/referrals", response_model=StatsReply, name="stats.referrals", description=_REFERRALS,
            openapi_extra=enums(group_by=service.REFERRAL_DIMENSIONS, district=district_codes()),
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
    to_agency: Annotated[str | None, Query(min_length=2, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9_-]*$",
                                           description="the receiving agency's code")] = None,
    reason: ReferralReason | None = None,
    urgency: Urgency | None = None,
    district: Annotated[District | None, Query(description="the referred person's district code, `61.07`; an "
                                               "unknown code is a 422")] = None,
    open: Annotated[bool | None, Query(description="`true`: only the open referrals (requested, received, "
                                       "accepted, in-progress, on-hold); `false`: only the closed ones")] = None,
) -> Response:
    """Referral counts (with overdue) of the caller's jurisdiction, rounded by cell key, small cells suppressed."""
    dims = service.parse_group_by(group_by, service.REFERRAL_DIMENSIONS)
    limit = service.effective_threshold(services(request).settings.suppression_threshold, threshold)
    table = await service.referral_stats(session, caller, dims, limit, since=since, until=until, status=status,
                                         to_agency=to_agency, reason=reason, urgency=urgency, district=district,
                                         open_=open)
    return _reply(request, table)

