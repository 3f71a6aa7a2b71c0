"""Referral creation rules of the penetration test's smaller findings: a referral goes to an
agency that acts on referrals (not the operator, not an inspectorate); and names and texts
shown to other agencies may not hold bidirectional override characters (api.core.text), in
referrals, returnee records, notices and agencies alike."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from api.core import text
from models import Agency, AgencyKind, NoticeFollowUp, Referral, Returnee
from tests.conftest import assert_problem
from tests.returnee_rows import insert_returnees

RLO, PDF, RLI, PDI = "\u202e", "\u202c", "\u2067", "\u2069"
SPOOFED = f"Siti {RLO}hanimA{PDF}"  # displays as "Siti Aminah"


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


# --- bidirectional controls in names -------------------------------------------------------


@pytest.mark.parametrize("char", sorted(text.BIDI_CONTROLS))
def test_every_bidi_control_is_refused_and_other_scripts_are_not(char):
    with pytest.raises(ValueError, match="bidirectional"):
        text.refuse_bidi(f"Siti{char}Aminah")
    for fine in ("Siti Aminah", "Nurul Ḥasanah", "عائشة", "Dewi\u200dSari", None):
        assert text.refuse_bidi(fine) == fine


async def test_bidi_in_a_returnee_record_rejects_that_record(client, make_party, db):
    bp3mi = await make_party("BP3MI-KALBAR", "61", "returnees:write returnees:read",
                             kind=AgencyKind.migrant_protection)
    base = {"sex": "F", "origin_district": "61.07", "return_type": "deported", "return_date": "2025-03-14"}
    records = [{"source_ref": "B-1", "full_name": SPOOFED, **base},
               {"source_ref": "B-2", "full_name": "Siti Aminah", "employer": f"Ladang {RLI}Sawit{PDI}", **base},
               {"source_ref": "B-3", "full_name": "Siti Aminah", "entry_point": f"PLBN {RLO}kuraA", **base},
               {"source_ref": "B-4", "full_name": "Nurul Ḥasanah", **base}]
    r = await client.post("/v1/returnees/batch", json={"records": records}, headers=await bp3mi.headers())
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["rejected", "rejected", "rejected", "created"]
    assert [[e["field"] for e in x["errors"]] for x in res[:3]] == [["full_name"], ["employer"], ["entry_point"]]
    assert "bidirectional" in res[0]["errors"][0]["message"]
    assert await count(db, Returnee) == 1


@pytest.mark.parametrize("field,over", [
    ("subject.full_name", {"subject": {"full_name": SPOOFED}}),
    ("consent.given_by", {"consent": {"given": True, "given_by": SPOOFED, "given_at": "2025-05-20T03:00:00Z",
                                      "method": "written"}}),
    ("consent.guardian", {"consent": {"given": True, "given_by": "Ibu", "given_at": "2025-05-20T03:00:00Z",
                                      "method": "written", "guardian": SPOOFED}}),
    ("note", {"note": f"passport held {RLO}reyolpme{PDF}"}),
])
async def test_bidi_in_a_referral_is_refused(client, make_party, db, field, over):
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    await make_party("POLRES-BENGKAYANG", "61.07", "referrals:respond", kind=AgencyKind.police)
    problem = assert_problem(await client.post("/v1/referrals", json=referral("POLRES-BENGKAYANG", **over),
                                               headers=await sender.headers()), 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert await count(db, Referral) == 0


async def test_bidi_in_a_transition_note_is_refused(client, make_party):
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    receiver = await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond",
                                kind=AgencyKind.police)
    ref = (await client.post("/v1/referrals", json=referral("POLRES-BENGKAYANG"), headers=await sender.headers())).json()
    r = await client.post(f"/v1/referrals/{ref['id']}/transitions", json={"action": "receive", "note": SPOOFED},
                          headers=await receiver.headers(**{"If-Match": '"1"'}))
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["note"]


async def test_bidi_in_a_notice_or_follow_up_is_refused(client, make_party, db):
    bp3mi = await make_party("BP3MI-KALBAR", "61", "notices:write notices:read", kind=AgencyKind.migrant_protection)
    district = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read notices:ack",
                                kind=AgencyKind.women_child_protection)
    ids = [str(i) for i in await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)]
    for field in ("summary", "entry_point"):
        r = await client.post("/v1/notices", json={"district": "61.07", "returnee_ids": ids, field: SPOOFED},
                              headers=await bp3mi.headers())
        assert [e["field"] for e in assert_problem(r, 422)["errors"]] == [field]
    n = await client.post("/v1/notices", json={"district": "61.07", "returnee_ids": ids}, headers=await bp3mi.headers())
    r = await client.post(f"/v1/notices/{n.json()['id']}/follow-ups",
                          json={"action": "home_visit", "occurred_on": "2025-06-15", "note": SPOOFED},
                          headers=await district.headers())
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["note"]
    assert await count(db, NoticeFollowUp) == 0


async def test_bidi_in_an_agency_or_client_name_is_refused(client, make_party, db):
    operator = await make_party("SINERGI-OPERATOR", "61", "admin", kind=AgencyKind.operator)
    h = await operator.headers()
    r = await client.post("/v1/agencies", json={"code": "DP3A-X", "name": f"DP3A {RLO}sabmaS", "jurisdiction": "61.01"},
                          headers=h)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["name"]
    async with db.read() as conn:
        assert (await conn.execute(sa.select(Agency.code).where(Agency.code == "DP3A-X"))).first() is None
    r = await client.post("/v1/agencies/SINERGI-OPERATOR/clients", json={"scopes": ["admin"], "name": SPOOFED},
                          headers=h)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["name"]
