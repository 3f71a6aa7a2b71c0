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
