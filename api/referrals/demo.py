"""Demo referrals among the demo agencies, in every status, some of them overdue.

They go through the same service functions as the API (state machine, history, audit, events),
back-dated with :func:`api.core.clock.frozen`. They are about demo returnees (those the sender may
read, :func:`api.returnees.repository.readable`) when a returnee loader ran before this one, else
about people described inline. Loading again adds nothing: the demo
referrals carry ``sender_ref`` ``DEMO-…``, and their presence means they are loaded.
"""

from __future__ import annotations

import random
from datetime import UTC, date, timedelta
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock
from api.core.context import Caller
from api.core.preconditions import etag
from api.referrals import repository, service
from api.referrals.schemas import ADULT_AGE, ReferralCreate, age_on
from api.referrals.workflow import Action
from api.returnees import repository as returnees
from models import Agency, AgencyKind, Returnee

PREFIX = "DEMO-"

# (sender, receiver, reason, legal basis): who refers what to whom in Bengkayang
FLOWS: list[tuple[str, str, str, str]] = [
    ("BP3MI-KALBAR", "POLRES-BENGKAYANG", "suspected_tppo_victim", "UU-21-2007:1"),
    ("POLRES-BENGKAYANG", "DINSOS-BENGKAYANG", "social_rehabilitation", "UU-21-2007:51"),
    ("POLRES-BENGKAYANG", "DP3A-BENGKAYANG", "health_rehabilitation", "UU-21-2007:51"),
    ("DINSOS-BENGKAYANG", "DP3A-BENGKAYANG", "reintegration", "UU-21-2007:51"),
    ("BP3MI-KALBAR", "DP3A-SAMBAS", "reintegration", "UU-21-2007:51"),
    ("POLRES-BENGKAYANG", "DINSOS-BENGKAYANG", "restitution", "UU-21-2007:48"),
]

# the receiver's moves to reach each status; ``cancel`` is the sender's
PATHS: dict[str, list[Action]] = {
    "requested": [],
    "received": [Action.receive],
    "accepted": [Action.receive, Action.accept],
    "in-progress": [Action.receive, Action.accept, Action.start],
    "on-hold": [Action.receive, Action.accept, Action.start, Action.hold],
    "completed": [Action.receive, Action.accept, Action.start, Action.complete],
    "rejected": [Action.receive, Action.reject],
    "failed": [Action.receive, Action.accept, Action.start, Action.fail],
    "cancelled": [Action.receive, Action.cancel],
}

NOTES = {
    Action.reject: "Outside our remit; please refer to the district social services",
    Action.fail: "The person moved away and could not be reached",
    Action.cancel: "Referred in error; the person is already in a shelter",
    Action.hold: "Waiting for the medical report",
}

NAMES = ["Siti Rahmawati", "Yohanes Apui", "Maria Goreti", "Antonius Jelani", "Dewi Lestari", "Paulus Ajun",
         "Rina Marlina", "Agustinus Bujang", "Veronika Sinta", "Hendrikus Aleng", "Lusia Ayu", "Stefanus Ricky"]
DISTRICTS = ["61.07.07", "61.07.01", "61.07.05", "61.07.11", "61.07.14"]


def _caller(agency: Agency) -> Caller:
    return Caller(client_id=f"demo-{agency.code.lower()}", agency=agency.code, agency_kind=AgencyKind(agency.kind),
                  jurisdiction=agency.jurisdiction,
                  scopes=frozenset({"referrals:read", "referrals:write", "referrals:respond"}), token_id="demo")


async def load_referrals(session: AsyncSession) -> dict[str, Any] | None:
    """Load the demo referrals (once)."""
    if await repository.any_with_sender_ref_prefix(session, PREFIX):
        return {"referrals": {"loaded": 0, "note": "demo referrals already present"}}
    agencies = {a.code: a for a in (await session.exec(select(Agency))).all()}
    rng = random.Random(7)
    now = clock.now()
    count, n = 0, 0
    pools: dict[str, list[Returnee]] = {}
    for sender_code, receiver_code, reason, basis in FLOWS:
        if sender_code not in agencies or receiver_code not in agencies:
            continue
        sender, receiver = _caller(agencies[sender_code]), _caller(agencies[receiver_code])
        if sender_code not in pools:
            pools[sender_code] = await returnees.recent_readable(session, sender, 40)
        pool = pools[sender_code]
        for path in PATHS.values():
            n += 1
            urgency = rng.choice(["emergency", "high", "normal", "normal"])
            # open referrals made long ago are overdue; the rest are spread over six weeks
            days_ago = rng.randint(10, 40) if rng.random() < 0.4 else rng.randint(0, 6)
            created = (now - timedelta(days=days_ago, hours=rng.randint(0, 23))).astimezone(UTC)
            returnee = pool[(n - 1) % len(pool)] if pool and n % 3 else None
            child = False
            body: dict[str, Any] = {
                "to_agency": receiver_code, "sender_ref": f"{PREFIX}{n:03d}", "reason": reason,
                "legal_basis": basis, "urgency": urgency,
                "note": "Demo referral (synthetic data)",
            }
            if returnee is not None:
                body["returnee_id"] = returnee.id
                child = returnee.birth_date is not None and age_on(returnee.birth_date, created.date()) < ADULT_AGE
            else:
                child = n % 7 == 0
                birth = date(2010, 4, 2) if child else date(rng.randint(1975, 2003), rng.randint(1, 12), rng.randint(1, 28))
                district = "61.01.03" if receiver_code == "DP3A-SAMBAS" else rng.choice(DISTRICTS)
                body["subject"] = {"full_name": rng.choice(NAMES), "sex": rng.choice("FM"), "birth_date": birth,
                                   "district": district}
            if n % 4 == 0:
                body["consent"] = {"given": False}
                body["processing_basis"] = rng.choice(["vital_interest", "public_task", "legal_obligation"])
            else:
                body["consent"] = {"given": True, "given_by": "the subject" if not child else "the subject's mother",
                                   "given_at": created - timedelta(hours=2), "method": rng.choice(
                                       ["written", "thumbprint", "verbal_witnessed"]),
                                   "guardian": "Ibu kandung (mother)" if child else None}
            with clock.frozen(created):
                ref, _ = await service.create_referral(session, sender, ReferralCreate.model_validate(body))
            at = created
            for action in path:
                at += timedelta(hours=rng.randint(2, 30))
                if at > now:
                    at = now
                who = sender if action is Action.cancel else receiver
                with clock.frozen(at):
                    ref, _ = await service.transition(session, who, ref.id, action, NOTES.get(action),
                                                      etag(ref.version))
            count += 1
    return {"referrals": {"loaded": count}}
