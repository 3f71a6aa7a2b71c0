"""Referral creation rules of the penetration test's smaller findings: a referral goes to an
agency that acts on referrals (not the operator, not an inspectorate)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from models import AgencyKind, Referral
from tests.conftest import assert_problem


def referral(to: str, **over: Any) -> dict[str, Any]:
    return {"to_agency": to, "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
            "subject": {"full_name": "Rina", "district": "61.07.07"}, "processing_basis": "vital_interest", **over}


async def count(db, model) -> int:
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()


@pytest.mark.parametrize("kind,code", [(AgencyKind.operator, "SINERGI-OPERATOR"),
                                       (AgencyKind.inspectorate, "INSPEKTORAT-KALBAR")])
async def test_a_referral_to_an_agency_that_does_not_act_on_referrals_is_refused(client, make_party, db, kind, code):
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    await make_party(code, "61", "audit:read", kind=kind)
    problem = assert_problem(await client.post("/v1/referrals", json=referral(code), headers=await sender.headers()),
                             422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["to_agency"]
    assert "does not act on referrals" in problem["errors"][0]["message"]
    assert await count(db, Referral) == 0


@pytest.mark.parametrize("kind", [k for k in AgencyKind if k not in (AgencyKind.operator, AgencyKind.inspectorate)])
async def test_every_other_kind_receives_referrals(client, make_party, kind):
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    await make_party("RECEIVER", "61.07", "referrals:read referrals:respond", kind=kind)
    r = await client.post("/v1/referrals", json=referral("RECEIVER"), headers=await sender.headers())
    assert r.status_code == 201, r.text
