from __future__ import annotations

import asyncio
import uuid
from datetime import date

import sqlalchemy as sa

from api.core.unit import operator_unit
from api.notices import service as notices
from models import AgencyKind, AuditEvent, AuditSubject, Notice, NoticeReturnee
from tests.conftest import assert_problem
from tests.returnee_rows import insert_returnees

BP3MI_SCOPES = "notices:write notices:read events:read returnees:read"
DISTRICT_SCOPES = "notices:read notices:ack events:read"


async def _parties(make_party):
    bp3mi = await make_party("BP3MI-KALBAR", "61", BP3MI_SCOPES, kind=AgencyKind.migrant_protection)
    bengkayang = await make_party("DP3A-BENGKAYANG", "61.07", DISTRICT_SCOPES, kind=AgencyKind.women_child_protection)
    sambas = await make_party("DP3A-SAMBAS", "61.01", DISTRICT_SCOPES, kind=AgencyKind.women_child_protection)
    return bp3mi, bengkayang, sambas


async def _create(client, party, district, ids, **extra):
    body = {"district": district, "returnee_ids": [str(i) for i in ids], "summary": "Deportees via Jagoi Babang",
            "arrival_date": "2025-06-12", "entry_point": "PLBN Jagoi Babang", **extra}
    return await client.post("/v1/notices", json=body, headers=await party.headers())


async def test_create_list_get(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 3)
    r = await _create(client, bp3mi, "61.07", ids)
    assert r.status_code == 201, r.text
    n = r.json()
    assert r.headers["location"] == f"/v1/notices/{n['id']}"
    assert r.headers["etag"] == '"1"'
    assert n["district"] == "61.07" and n["issued_by"] == "BP3MI-KALBAR"
    assert n["acknowledged_at"] is None and n["follow_ups"] == []
    assert sorted(n["returnee_ids"]) == sorted(map(str, ids))

    # the district and the issuer see it; Sambas does not
    for party in (bengkayang, bp3mi):
        r = await client.get("/v1/notices", headers=await party.headers())
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["items"]] == [n["id"]]
        r = await client.get(f"/v1/notices/{n['id']}", headers=await party.headers())
        assert r.status_code == 200, r.text
        assert r.headers["etag"] == '"1"'
        got = r.json()
        assert len(got["returnees"]) == 3
        one = got["returnees"][0]
        assert {"id", "name", "sex", "origin_subdistrict", "return_type", "return_date",
                "trafficking_status"} <= one.keys()
        assert not any("nik" in k or "passport" in k for k in one)
        assert "encrypted" not in r.text
    r = await client.get("/v1/notices", headers=await sambas.headers())
    assert r.json() == {"items": [], "next_cursor": None}
    assert_problem(await client.get(f"/v1/notices/{n['id']}", headers=await sambas.headers()), 404)
    assert_problem(await client.get(f"/v1/notices/{uuid.uuid4()}", headers=await bengkayang.headers()), 404)

    # the read of one notice is audited with the notice and its returnees as subjects
    async with db.sessionmaker() as s:
        subjects = set(
            (await s.execute(
                sa.select(AuditSubject.resource_type, AuditSubject.resource_id)
                .join(AuditEvent, AuditEvent.id == AuditSubject.event_id)
                .where(AuditEvent.action == "notice.read", AuditEvent.agency == "DP3A-BENGKAYANG")
            )).all()
        )
    assert ("notice", n["id"]) in subjects
    assert {("returnee", str(i)) for i in ids} <= subjects


async def test_list_filters_and_paging(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    b_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 5)
    s_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.01", 1)
    created = []
    for rid in b_ids:
        r = await _create(client, bp3mi, "61.07", [rid])
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])
    r = await _create(client, bp3mi, "61.01", s_ids)
    sambas_notice = r.json()["id"]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/notices", params=params, headers=await bengkayang.headers())
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))  # newest first, each once

    r = await client.get("/v1/notices", params={"district": "61.01"}, headers=await bp3mi.headers())
    assert [x["id"] for x in r.json()["items"]] == [sambas_notice]
    r = await client.get("/v1/notices", params={"district": "61.01"}, headers=await bengkayang.headers())
    assert r.json()["items"] == []

    r = await client.get(f"/v1/notices/{created[0]}", headers=await bengkayang.headers())
    r = await client.post(f"/v1/notices/{created[0]}/acknowledge",
                          headers=await bengkayang.headers(**{"If-Match": r.headers["etag"]}))
    assert r.status_code == 200, r.text
    r = await client.get("/v1/notices", params={"acknowledged": "false"}, headers=await bengkayang.headers())
    assert sorted(x["id"] for x in r.json()["items"]) == sorted(created[1:])
    r = await client.get("/v1/notices", params={"acknowledged": "true"}, headers=await bengkayang.headers())
    assert [x["id"] for x in r.json()["items"]] == [created[0]]
    assert_problem(await client.get("/v1/notices", params={"cursor": "nope"}, headers=await bengkayang.headers()), 400)


async def test_create_validation(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    b_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 2)
    s_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.01", 1)
    r = await _create(client, bp3mi, "61.07", [b_ids[0], s_ids[0], uuid.uuid4()])
    body = assert_problem(r, 422, "validation-error")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"returnee_ids.1", "returnee_ids.2"}
    assert "61.01" in body["errors"][0]["message"]

    # a returnee the issuer may not see is as unknown as one that does not exist
    other = await make_party("DINSOS-SAMBAS", "61.01", "notices:write")
    r = await _create(client, other, "61.01", [b_ids[0]])
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["returnee_ids.0"]

    assert_problem(await _create(client, bp3mi, "61.07.07", b_ids), 422)  # a sub-district, not a district
    assert_problem(await _create(client, bp3mi, "61.07", []), 422)
    assert_problem(await _create(client, bp3mi, "61.07", [b_ids[0], b_ids[0]]), 422)
    # the district may read but not issue
    assert_problem(await _create(client, bengkayang, "61.07", b_ids), 403, "insufficient-scope")
    async with db.sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(Notice))).scalar() == 0


async def test_idempotency_key_replays(client, make_party, db):
    bp3mi, *_ = await _parties(make_party)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 2)
    key = {"Idempotency-Key": "notice-2025-06-12-bky"}
    body = {"district": "61.07", "returnee_ids": [str(i) for i in ids]}
    r1 = await client.post("/v1/notices", json=body, headers=await bp3mi.headers(**key))
    assert r1.status_code == 201, r1.text
    r2 = await client.post("/v1/notices", json=body, headers=await bp3mi.headers(**key))
    assert r2.status_code == 201
    assert r2.headers["idempotent-replayed"] == "true"
    assert r2.json() == r1.json()
    assert r2.headers["location"] == r1.headers["location"]
    r3 = await client.post("/v1/notices", json={**body, "summary": "other"}, headers=await bp3mi.headers(**key))
    assert_problem(r3, 422, "idempotency-key-reused")
    async with db.sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(Notice))).scalar() == 1


async def test_acknowledge_preconditions(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
    n = (await _create(client, bp3mi, "61.07", ids)).json()
    url = f"/v1/notices/{n['id']}/acknowledge"

    assert_problem(await client.post(url, headers=await bengkayang.headers()), 428, "precondition-required")
    assert_problem(await client.post(url, headers=await bengkayang.headers(**{"If-Match": '"7"'})), 412)
    # Sambas cannot see it; the issuer sees it but is not the addressee
    assert_problem(await client.post(url, headers=await sambas.headers(**{"If-Match": '"1"'})), 404)
    issuer_ack = await make_party("BP3MI-KALBAR", "61", "notices:ack notices:read")
    assert_problem(await client.post(url, headers=await issuer_ack.headers(**{"If-Match": '"1"'})), 403,
                   "not-addressee")

    r = await client.post(url, headers=await bengkayang.headers(**{"If-Match": '"1"'}))
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    assert r.json()["acknowledged_by"] == "DP3A-BENGKAYANG" and r.json()["acknowledged_at"]

    r = await client.post(url, headers=await bengkayang.headers(**{"If-Match": '"2"'}))
    assert_problem(r, 409, "conflict")
    r = await client.get(f"/v1/notices/{n['id']}", headers=await bp3mi.headers())
    assert r.json()["acknowledged_by"] == "DP3A-BENGKAYANG"
    assert r.headers["etag"] == '"2"'


async def test_concurrent_acknowledgements_one_wins(client, make_party, db):
    bp3mi, bengkayang, _ = await _parties(make_party)
    dinsos = await make_party("DINSOS-BENGKAYANG", "61.07", DISTRICT_SCOPES, kind=AgencyKind.social_services)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
    n = (await _create(client, bp3mi, "61.07", ids)).json()
    url = f"/v1/notices/{n['id']}/acknowledge"
    headers = [await p.headers(**{"If-Match": '"1"'}) for p in (bengkayang, dinsos) * 4]
    replies = await asyncio.gather(*(client.post(url, headers=h) for h in headers))
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) == 1, [(r.status_code, r.text) for r in replies]
    assert set(codes) <= {200, 409, 412}
    async with db.sessionmaker() as s:
        notice = await s.get(Notice, uuid.UUID(n["id"]))
        assert notice.version == 2
        acks = (await s.execute(sa.text("SELECT count(*) FROM event WHERE type = 'notice.acknowledged'"))).scalar()
        assert acks == 1


async def test_follow_ups(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
    n = (await _create(client, bp3mi, "61.07", ids)).json()
    url = f"/v1/notices/{n['id']}/follow-ups"
    body = {"action": "home_visit", "note": "Visited family in Jagoi Babang", "occurred_on": "2025-06-15"}
    r = await client.post(url, json=body, headers=await bengkayang.headers(**{"Idempotency-Key": "fu-1"}))
    assert r.status_code == 201, r.text
    fu = r.json()
    assert fu["action"] == "home_visit" and fu["recorded_by"] == "DP3A-BENGKAYANG"
    r2 = await client.post(url, json=body, headers=await bengkayang.headers(**{"Idempotency-Key": "fu-1"}))
    assert r2.status_code == 201 and r2.json()["id"] == fu["id"]

    assert_problem(await client.post(url, json=body, headers=await sambas.headers()), 404)
    assert_problem(await client.post(url, json={**body, "action": "party"}, headers=await bengkayang.headers()), 422)
    issuer_ack = await make_party("BP3MI-KALBAR", "61", "notices:ack")
    assert_problem(await client.post(url, json=body, headers=await issuer_ack.headers()), 403, "not-addressee")

    r = await client.get(f"/v1/notices/{n['id']}", headers=await bp3mi.headers())
    assert [f["id"] for f in r.json()["follow_ups"]] == [fu["id"]]
    assert r.headers["etag"] == '"2"'  # the follow-up moved the notice on
    r = await client.post(f"/v1/notices/{n['id']}/acknowledge", headers=await bengkayang.headers(**{"If-Match": '"1"'}))
    assert_problem(r, 412)


async def test_raise_for_batch(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    b_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 3)
    s_ids = await insert_returnees(db, "BP3MI-KALBAR", "61.01", 2)
    from api.core.context import Caller

    caller = Caller(client_id="batch", agency="BP3MI-KALBAR", agency_kind=AgencyKind.migrant_protection,
                    jurisdiction="61", scopes=frozenset({"returnees:write"}), token_id="t")
    async with operator_unit(db, "test") as session:
        touched = {"61.07": b_ids + b_ids[:1], "61.01": s_ids, "61.05": []}
        raised = await notices.raise_for_batch(session, caller, touched)
        assert [(n.district, n.returnee_count) for n in raised] == [("61.01", 2), ("61.07", 3)]
        assert all(n.issued_by == "BP3MI-KALBAR" and n.entry_point == "PLBN Jagoi Babang" for n in raised)
    async with db.sessionmaker() as s:
        links = (await s.execute(sa.select(NoticeReturnee.notice_id, NoticeReturnee.returnee_id))).all()
        assert len(links) == 5
        events = (await s.execute(sa.text("SELECT type, region FROM event ORDER BY pos"))).all()
        assert sorted(events) == [("notice.created", "61.01"), ("notice.created", "61.07")]

    r = await client.get("/v1/notices", headers=await bengkayang.headers())
    assert [x["returnee_count"] for x in r.json()["items"]] == [3]
    r = await client.get("/v1/notices", headers=await sambas.headers())
    assert [x["district"] for x in r.json()["items"]] == ["61.01"]


async def test_demo_notices_load_twice(db):
    from api.cli import demo_data as demo
    from api.core.unit import operator_unit
    from api.notices.demo import load_notices
    from models import NoticeFollowUp

    async def load_notices_once() -> dict | None:
        async with operator_unit(db, "demo") as session:
            return await load_notices(session)

    async with operator_unit(db, "demo") as session:
        await demo.load_agencies(session)
    await insert_returnees(db, "BP3MI-KALBAR", "61.07", 4, return_date=date(2025, 5, 3))
    await insert_returnees(db, "BP3MI-KALBAR", "61.07", 3)
    await insert_returnees(db, "BP3MI-KALBAR", "61.01", 2)
    out = await load_notices_once()
    assert out is not None and out["notices"] == {"created": 3, "acknowledged": 1}
    assert not await load_notices_once()
    async with db.sessionmaker() as s:
        rows = (await s.execute(sa.select(Notice.district, Notice.acknowledged_by).order_by(Notice.created_at))).all()
        assert len(rows) == 3
        expected = [("61.07", "DP3A-BENGKAYANG"), ("61.07", None), ("61.01", None)]
        assert sorted(rows, key=str) == sorted(expected, key=str)
        assert (await s.execute(sa.select(sa.func.count()).select_from(NoticeFollowUp))).scalar() == 1
        assert (await s.execute(sa.select(sa.func.count()).select_from(NoticeReturnee))).scalar() == 9
