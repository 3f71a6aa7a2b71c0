"""A region code filter that is not a code of the reference is a 422 naming the valid codes,
on every list and statistics route that takes one (not an empty reply that looks like "none")."""

from __future__ import annotations

import pytest

from models import AgencyKind
from tests.conftest import assert_problem

ROUTES = [
    pytest.param("/v1/returnees", "returnees:read", "61.99", id="returnees"),
    pytest.param("/v1/returnees", "returnees:read", "61.07.99", id="returnees-subdistrict"),
    pytest.param("/v1/notices", "notices:read", "61.99", id="notices"),
    pytest.param("/v1/stats/returnees", "stats:read", "61.99", id="stats-returnees"),
]


@pytest.mark.parametrize(("path", "scope", "code"), ROUTES)
async def test_an_unknown_region_code_is_a_422_naming_the_valid_ones(client, make_party, path, scope, code):
    party = await make_party("DP3A-KALBAR", "61", [scope], kind=AgencyKind.women_child_protection)
    r = await client.get(path, params={"district": code}, headers=await party.headers())
    body = assert_problem(r, 422, "validation-error")
    [error] = body["errors"]
    assert error["field"] == "query.district"
    assert code in error["message"]
    if code.count(".") == 2:  # a sub-district of a known district: its sub-districts are named
        assert "61.07.07" in error["message"] and "61.07.17" in error["message"]
    else:
        assert "61.07 Kabupaten Bengkayang" in error["message"] and "61.72 Kota Singkawang" in error["message"]
    # a known code is a filter as before
    known = "61.07" if path != "/v1/returnees" or code.count(".") == 1 else "61.07.07"
    assert (await client.get(path, params={"district": known}, headers=await party.headers())).status_code == 200


async def test_the_document_lists_the_codes(client):
    doc = (await client.get("/openapi.json")).json()
    param = {p["name"]: p for p in doc["paths"]["/v1/stats/returnees"]["get"]["parameters"]}["district"]
    codes = next(b["enum"] for b in param["schema"]["anyOf"] if b.get("type") == "string")
    assert "61.07" in codes and "61.99" not in codes and "61.07.07" not in codes


@pytest.mark.parametrize("code", ["99.99", "99", "6107", "11.01.99", "61.07.07.9999.1"])
async def test_a_code_far_from_any_known_one_is_told_how_codes_are_written(client, make_party, code):
    """Not the whole national reference (five hundred districts, once a 14,000-character
    message that named Aceh as "the province"): how codes are written and where they are listed,
    in a message a person reads."""
    party = await make_party("DP3A-KALBAR", "61", ["returnees:read"], kind=AgencyKind.women_child_protection)
    r = await client.get("/v1/returnees", params={"district": code}, headers=await party.headers())
    [error] = assert_problem(r, 422, "validation-error")["errors"]
    assert len(error["message"]) < 300 and code[:32] in error["message"], error
    assert "GET /v1/regions" in error["message"] or "holds no sub-districts of 11.01" in error["message"], error


async def test_every_field_that_names_a_region_is_checked_by_the_same_rule(client, make_party):
    """An agency's jurisdiction, a referral subject's district, a batch record's district: the
    same validator, the same helpful message."""
    bp3mi = await make_party("BP3MI-KALBAR", "61", ["referrals:write", "returnees:write"],
                             kind=AgencyKind.migrant_protection)
    await make_party("POLRES-BENGKAYANG", "61.07", ["referrals:read"], kind=AgencyKind.police)
    subject = {"full_name": "Subjek Uji", "sex": "F", "district": "61.99"}
    r = await client.post("/v1/referrals", headers=await bp3mi.headers(), json={
        "to_agency": "POLRES-BENGKAYANG", "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
        "urgency": "normal", "subject": subject,
        "consent": {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z", "method": "written"}})
    [error] = assert_problem(r, 422, "validation-error")["errors"]
    assert error["field"] == "subject.district"
    assert "not a district of 61" in error["message"] and "61.07 Kabupaten Bengkayang" in error["message"], error
    operator = await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)
    r = await client.post("/v1/agencies", headers=await operator.headers(), json={
        "code": "X-DISTRICT", "name": "Dinas Uji", "kind": "social_services", "jurisdiction": "61.07.99"})
    [error] = assert_problem(r, 422, "validation-error")["errors"]
    assert error["field"] == "jurisdiction"
    assert "not a sub-district of 61.07" in error["message"] and "61.07.07" in error["message"], error
    r = await client.post("/v1/returnees/batch", headers=await bp3mi.headers(), json={"records": [{
        "source_ref": "R-1", "full_name": "Subjek Uji", "sex": "F", "origin_district": "61.99",
        "deported_at": "2025-05-01", "deported_from": "MY"}]})
    assert r.status_code == 200, r.text
    errors = r.json()["results"][0]["errors"]
    assert {"field": "origin_district", "message": errors[0]["message"]} in errors
    assert "not a district code" in errors[0]["message"] and "61.07 Kabupaten Bengkayang" in errors[0]["message"]
