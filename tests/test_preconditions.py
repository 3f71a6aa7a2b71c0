"""State changes are conditional on the version the caller read."""

from __future__ import annotations

from models import AgencyKind
from tests.conftest import assert_problem
from tests.returnee_rows import insert_returnees


async def test_if_match_star_does_not_pass_a_state_change(client, make_party, db):
    """``If-Match: *`` would match whatever version is current: an acknowledgement (like every
    other state change) must name the version the caller read."""
    bp3mi = await make_party("BP3MI-KALBAR", "61", "notices:write", kind=AgencyKind.migrant_protection)
    district = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read notices:ack",
                                kind=AgencyKind.women_child_protection)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
    body = {"district": "61.07", "returnee_ids": [str(i) for i in ids], "summary": "Deportees",
            "arrival_date": "2025-06-12", "entry_point": "PLBN Jagoi Babang"}
    n = (await client.post("/v1/notices", json=body, headers=await bp3mi.headers())).json()
    url = f"/v1/notices/{n['id']}/acknowledge"
    for value in ("*", '"1", *'):
        problem = assert_problem(await client.post(url, headers=await district.headers(**{"If-Match": value})), 428)
        assert "*" in problem["detail"]
    got = await client.get(f"/v1/notices/{n['id']}", headers=await district.headers())
    assert got.json()["acknowledged_at"] is None and got.headers["etag"] == '"1"'
    r = await client.post(url, headers=await district.headers(**{"If-Match": '"1"'}))
    assert r.status_code == 200, r.text
