"""Demo notices: one per district and return month for the demo returnees not yet on a notice,
issued by BP3MI Kalimantan Barat. Bengkayang acknowledges its older notices and records some
follow-up. Safe to run again: returnees already on a notice are not noticed twice.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.core.context import Caller
from api.notices import service
from api.notices.schemas import FollowUpCreate, today_in_kalbar
from api.returnees import repository as returnees
from models import Agency, AgencyKind, FollowUpAction

ISSUER = "BP3MI-KALBAR"
BENGKAYANG = "61.07"
ACKNOWLEDGER = "DP3A-BENGKAYANG"

FOLLOW_UPS = [
    (FollowUpAction.home_visit, "Kunjungan rumah bersama perangkat desa; keluarga menerima kepulangan."),
    (FollowUpAction.counselling, "Konseling psikososial oleh UPTD PPA."),
    (FollowUpAction.referral_made, "Dirujuk ke Dinas Sosial untuk rehabilitasi sosial."),
    (FollowUpAction.reintegration, "Didaftarkan pada pelatihan kerja BLK Bengkayang."),
]


def _issuer(agency: Agency) -> Caller:
    """The issuer as a caller: the returnees it may read (all it pushed) are those noticed."""
    return Caller(client_id=f"demo-{agency.code.lower()}", agency=agency.code, agency_kind=AgencyKind(agency.kind),
                  jurisdiction=agency.jurisdiction, scopes=frozenset({"notices:write"}), token_id="demo")


async def load_notices(session: AsyncSession) -> dict[str, Any] | None:
    agency = await session.get(Agency, ISSUER)
    if agency is None:
        return None
    issuer = _issuer(agency)
    rows = await returnees.readable_not_on_a_notice(session, issuer)
    if not rows:
        return None
    by_month: dict[tuple[int, int], dict[str, list[uuid.UUID]]] = {}
    for rid, district, returned in rows:
        by_month.setdefault((returned.year, returned.month), {}).setdefault(district, []).append(rid)
    notices = []
    for month in sorted(by_month):
        notices += await service.raise_for(session, issuer, by_month[month], source="demo")

    acknowledger = await session.get(Agency, ACKNOWLEDGER)
    bengkayang = [n for n in notices if n.district == BENGKAYANG]
    acknowledged = 0
    today = today_in_kalbar()
    if acknowledger is not None:
        for i, notice in enumerate(bengkayang[:-1]):  # the latest one still waits
            await service.acknowledge_as(session, ACKNOWLEDGER, notice)
            acknowledged += 1
            if i < 3:
                action, note = FOLLOW_UPS[i % len(FOLLOW_UPS)]
                await service.follow_up_as(
                    session, ACKNOWLEDGER, notice,
                    FollowUpCreate(action=action, note=note,
                                   occurred_on=min((notice.arrival_date or today) + timedelta(days=7), today)),
                )
    return {"notices": {"created": len(notices), "acknowledged": acknowledged}}
