"""Only the addressed district answers a notice (an agency whose jurisdiction is the notice's
district), and a follow-up records what was done: not a date after today in Kalimantan Barat
(WIB, UTC+7)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from api.core import clock
from models import AgencyKind, NoticeFollowUp
from tests.conftest import assert_problem
from tests.returnee_rows import insert_returnees

ACK = "notices:read notices:ack"


async def notice_to_bengkayang(client, make_party, db) -> dict:
    bp3mi = await make_party("BP3MI-KALBAR", "61", "notices:write notices:read", kind=AgencyKind.migrant_protection)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
    r = await client.post("/v1/notices", json={"district": "61.07", "returnee_ids": [str(ids[0])]},
                          headers=await bp3mi.headers())
    assert r.status_code == 201, r.text
    return r.json()


async def test_the_province_does_not_answer_for_the_district(client, make_party, db):
    n = await notice_to_bengkayang(client, make_party, db)
    province = await make_party("DP3A-KALBAR", "61", ACK, kind=AgencyKind.women_child_protection)
    district = await make_party("DP3A-BENGKAYANG", "61.07", ACK, kind=AgencyKind.women_child_protection)
    village = await make_party("PUSKESMAS-JAGOI", "61.07.07", ACK, kind=AgencyKind.health)
    ack = f"/v1/notices/{n['id']}/acknowledge"
    follow = f"/v1/notices/{n['id']}/follow-ups"
    body = {"action": "home_visit", "occurred_on": "2025-06-15"}

    # the province sees the notice, and may not acknowledge it or record follow-up
    assert (await client.get(f"/v1/notices/{n['id']}", headers=await province.headers())).status_code == 200
    problem = assert_problem(await client.post(ack, headers=await province.headers(**{"If-Match": '"1"'})), 403,
                             "/not-addressee")
    assert "61.07" in problem["detail"]
    assert_problem(await client.post(follow, json=body, headers=await province.headers()), 403, "/not-addressee")
    # a sub-district agency does not see the district's notices at all
    assert_problem(await client.post(ack, headers=await village.headers(**{"If-Match": '"1"'})), 404)
    assert_problem(await client.post(follow, json=body, headers=await village.headers()), 404)
    got = (await client.get(f"/v1/notices/{n['id']}", headers=await province.headers())).json()
    assert got["acknowledged_at"] is None and got["follow_ups"] == []

    # the district does
    r = await client.post(ack, headers=await district.headers(**{"If-Match": '"1"'}))
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "DP3A-BENGKAYANG"
    r = await client.post(follow, json=body, headers=await district.headers())
    assert r.status_code == 201, r.text


async def test_a_follow_up_cannot_be_dated_after_today_in_kalbar(client, make_party, db):
    n = await notice_to_bengkayang(client, make_party, db)
    district = await make_party("DP3A-BENGKAYANG", "61.07", ACK, kind=AgencyKind.women_child_protection)
    url = f"/v1/notices/{n['id']}/follow-ups"

    async def follow_up(on: str, at: datetime):
        with clock.frozen(at):
            return await client.post(url, json={"action": "home_visit", "occurred_on": on},
                                     headers=await district.headers())

    late_evening_utc = datetime(2025, 6, 15, 20, 0, tzinfo=UTC)  # 16 June, 03:00 in Pontianak
    problem = assert_problem(await follow_up("2999-01-01", late_evening_utc), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["occurred_on"]
    assert "2025-06-16" in problem["errors"][0]["message"]
    assert_problem(await follow_up("2025-06-17", late_evening_utc), 422)
    assert (await follow_up("2025-06-16", late_evening_utc)).status_code == 201  # today there
    before_midnight_wib = datetime(2025, 6, 15, 16, 59, tzinfo=UTC)  # 15 June, 23:59 in Pontianak
    assert_problem(await follow_up("2025-06-16", before_midnight_wib), 422)
    assert (await follow_up("2025-06-15", before_midnight_wib)).status_code == 201
    assert (await follow_up("2025-01-02", before_midnight_wib)).status_code == 201
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(NoticeFollowUp.occurred_on).order_by(NoticeFollowUp.occurred_on))).scalars()
        assert [d.isoformat() for d in stored] == ["2025-01-02", "2025-06-15", "2025-06-16"]
