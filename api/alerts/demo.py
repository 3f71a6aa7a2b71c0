"""Demo recruitment reports: made-up recruiters' identifiers reported by the demo agencies.

* one phone number (a fake job offer on Facebook for Sarawak's plantations) reported by BP3MI
  and by DP3A Bengkayang in Jagoi Babang: an alert to Polres and the task force of Bengkayang;
* one social-media handle reported by Dinas Sosial and Polres Bengkayang in Seluas: an alert;
* a vehicle plate reported by DP3A Sambas alone, and a phone number reported twice by BP3MI
  alone: no alert (one source each);
* debt bondage in Sanggau Ledo reported by BP3MI and DP3A Bengkayang: a public warning.

Loaded once (a second run adds nothing).
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from api.alerts import repository, service
from api.alerts.schemas import ReportIn
from api.core.context import Caller
from api.returnees import repository as returnees
from models import Agency, AgencyKind

# Made-up identifiers (documented so that tests can look for them in what must not hold them).
PHONE_JOB_OFFER = "+62 812-5566-7788"
PHONE_JOB_OFFER_AS_WRITTEN_BY_DISTRICT = "0812 5566 7788"
HANDLE = "@loker_sarawak_resmi"
PLATE = "KB 1234 XY"
PHONE_SINGLE = "+62 813 9090 1212"
IDENTIFIERS = (PHONE_JOB_OFFER, PHONE_JOB_OFFER_AS_WRITTEN_BY_DISTRICT, HANDLE, PLATE, PHONE_SINGLE)

REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("BP3MI-KALBAR", {"modus": "fake_job_offer_social_media", "region": "61.07.07", "route": ["61.07.07", "61.07.07.2001"],
                      "destination_country": "MY", "place_note": "dijemput di simpang pasar, menyeberang jalan tikus",
                      "identifiers": [{"kind": "phone", "value": PHONE_JOB_OFFER}], "named": 2}),
    ("DP3A-BENGKAYANG", {"modus": "fake_job_offer_social_media", "region": "61.07.07", "route": ["61.07.07"],
                         "destination_country": "MY",
                         "identifiers": [{"kind": "phone", "value": PHONE_JOB_OFFER_AS_WRITTEN_BY_DISTRICT}],
                         "named": 1}),
    ("DINSOS-BENGKAYANG", {"modus": "fake_job_offer_social_media", "region": "61.07.05", "route": ["61.07.05"],
                           "destination_country": "MY", "identifiers": [{"kind": "social_media", "value": HANDLE}]}),
    ("POLRES-BENGKAYANG", {"modus": "fake_job_offer_social_media", "region": "61.07.05",
                           "route": ["61.07.05", "61.07.05.2001"], "destination_country": "MY",
                           "identifiers": [{"kind": "social_media", "value": HANDLE}]}),
    ("DP3A-SAMBAS", {"modus": "visa_free_border_entry", "region": "61.01.01", "route": ["61.01.01"],
                     "destination_country": "MY", "identifiers": [{"kind": "vehicle_plate", "value": PLATE}]}),
    ("BP3MI-KALBAR", {"modus": "debt_bondage", "region": "61.07.06", "route": ["61.07.06"], "destination_country": "MY",
                      "identifiers": [{"kind": "phone", "value": PHONE_SINGLE}]}),
    ("BP3MI-KALBAR", {"modus": "debt_bondage", "region": "61.07.06", "route": ["61.07.06", "61.07.06.2002"],
                      "destination_country": "MY", "identifiers": [{"kind": "phone", "value": PHONE_SINGLE}]}),
    ("DP3A-BENGKAYANG", {"modus": "debt_bondage", "region": "61.07.06", "route": ["61.07.06"],
                         "destination_country": "MY"}),
]


async def load_alerts(session: AsyncSession) -> dict[str, Any] | None:
    """Demo loader: the reports above (once), as their agencies."""
    if await repository.any_report(session):
        return None
    loaded = 0
    for code, spec in REPORTS:
        agency = await session.get(Agency, code)
        if agency is None:
            continue
        writer = Caller(client_id=f"demo-{code.lower()}", agency=code, agency_kind=AgencyKind(agency.kind),
                        jurisdiction=agency.jurisdiction, scopes=frozenset({"alerts:write"}), token_id="demo")
        body = {k: v for k, v in spec.items() if k != "named"}
        named = await returnees.recent_readable(session, writer, spec.get("named", 0)) if spec.get("named") else []
        body["named_by"] = [{"returnee_id": r.id, "relationship": "friend"} for r in named
                            if r.origin_district == "61.07"]
        await service.report(session, writer, ReportIn.model_validate(body))
        loaded += 1
    return {"recruitment_reports": loaded}
