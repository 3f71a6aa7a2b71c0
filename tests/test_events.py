from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from models import AgencyKind, AuditEvent
from tests.conftest import assert_problem
from tests.returnee_rows import insert_returnees
from tests.test_notices import BP3MI_SCOPES, DISTRICT_SCOPES, _create, _parties


async def _feed(client, party, after=None, limit=None):
    params = {}
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = limit
    r = await client.get("/v1/events", params=params, headers=await party.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"], body  # always set
    return body


async def test_feed_shows_notice_to_district_and_issuer_only(client, make_party, db):
    bp3mi, bengkayang, sambas = await _parties(make_party)
    gugus = await make_party("GUGUS-TPPO-BENGKAYANG", "61.07", "events:read referrals:read",
                             kind=AgencyKind.task_force)
    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 2)
    n = (await _create(client, bp3mi, "61.07", ids)).json()

    for party in (bengkayang, bp3mi):
        items = (await _feed(client, party))["items"]
        assert [(e["type"], e["data"]["id"]) for e in items] == [("notice.created", n["id"])]
        e = items[0]
        assert e["data"] == {"id": n["id"], "district": "61.07", "issued_by": "BP3MI-KALBAR", "returnee_count": 2,
                             "status": "delivered"}
        assert {"id", "type", "occurred_at", "data"} == e.keys()
    assert (await _feed(client, sambas))["items"] == []
    assert (await _feed(client, gugus))["items"] == []  # in the district, but no notices:read

    # an issuer outside the district's jurisdiction sees its own notice through the audience
    outsider = await make_party("BP3MI-POS-ARUK", "61.01", "notices:write notices:read events:read",
                                kind=AgencyKind.migrant_protection)  # a border post writes for every district
    own = await insert_returnees(db, "BP3MI-POS-ARUK", "61.07", 1)
    n2 = (await _create(client, outsider, "61.07", own)).json()
    assert [e["data"]["id"] for e in (await _feed(client, outsider))["items"]] == [n2["id"]]
    assert (await _feed(client, sambas))["items"] == []

    # acknowledgements and follow-ups reach the issuer too
    r = await client.post(f"/v1/notices/{n['id']}/acknowledge", headers=await bengkayang.headers(**{"If-Match": '"1"'}))
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/notices/{n['id']}/follow-ups",
                          json={"action": "counselling", "occurred_on": "2025-07-01"},
                          headers=await bengkayang.headers())
    assert r.status_code == 201, r.text
    types = [e["type"] for e in (await _feed(client, bp3mi))["items"]]
    assert types == ["notice.created", "notice.created", "notice.acknowledged", "notice.follow_up_recorded"]
    assert [e["type"] for e in (await _feed(client, sambas))["items"]] == []

    async with db.sessionmaker() as s:
        reads = (await s.execute(sa.select(sa.func.count()).where(AuditEvent.action == "event.list"))).scalar()
    assert reads >= 6


async def test_cursor_paging_and_next_cursor_always_set(client, make_party, db):
    bp3mi, bengkayang, _ = await _parties(make_party)
    start = await _feed(client, bengkayang)
    assert start["items"] == []
    again = await _feed(client, bengkayang, after=start["next_cursor"])
    assert again == {"items": [], "next_cursor": start["next_cursor"]}

    ids = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 5)
    created = [(await _create(client, bp3mi, "61.07", [rid])).json()["id"] for rid in ids]
    seen, cursor = [], start["next_cursor"]
    for _ in range(10):
        page = await _feed(client, bengkayang, after=cursor, limit=2)
        assert len(page["items"]) <= 2
        seen += [e["data"]["id"] for e in page["items"]]
        if not page["items"]:
            assert page["next_cursor"] == cursor
            break
        cursor = page["next_cursor"]
    assert seen == created

    # polling on from the last cursor gives exactly what happened since
    more = await insert_returnees(db, "BP3MI-KALBAR", "61.07", 1)
    late = (await _create(client, bp3mi, "61.07", more)).json()["id"]
    page = await _feed(client, bengkayang, after=cursor)
    assert [e["data"]["id"] for e in page["items"]] == [late]
    assert page["next_cursor"] != cursor

    r = await client.get("/v1/events", params={"after": "garbage"}, headers=await bengkayang.headers())
    assert_problem(r, 400)
    assert_problem(await client.get("/v1/events", params={"limit": 0}, headers=await bengkayang.headers()), 422)
    no_scope = await make_party("DP3A-KALBAR", "61", "notices:read")
    assert_problem(await client.get("/v1/events", headers=await no_scope.headers()), 403)


async def test_change_feed_under_concurrent_writers_misses_nothing(client, make_party, db, backend):
    """Many requests write events at once (on PostgreSQL, truly in parallel over the pool)
    while a reader polls with after=cursor: the reader sees every event exactly once, in order."""
    if backend.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    bp3mi = await make_party("BP3MI-KALBAR", "61", BP3MI_SCOPES, kind=AgencyKind.migrant_protection)
    districts = ["61.07", "61.01", "61.02", "61.03"]
    ackers = {
        d: await make_party(f"DP3A-{d.replace('.', '')}", d, DISTRICT_SCOPES) for d in districts
    }
    returnees = {d: await insert_returnees(db, "BP3MI-KALBAR", d, 10) for d in districts}
    writer_headers = await bp3mi.headers()
    ack_headers = {d: await p.headers(**{"If-Match": '"1"'}) for d, p in ackers.items()}
    reader_headers = await bp3mi.headers()

    async def writer(d: str, rid) -> None:
        r = await client.post("/v1/notices", json={"district": d, "returnee_ids": [str(rid)]}, headers=writer_headers)
        assert r.status_code == 201, r.text
        r = await client.post(f"/v1/notices/{r.json()['id']}/acknowledge", headers=ack_headers[d])
        assert r.status_code == 200, r.text

    done = asyncio.Event()
    seen: list[str] = []

    async def reader() -> None:
        cursor = None
        while True:
            finished = done.is_set()
            params = {"limit": 7, **({"after": cursor} if cursor else {})}
            r = await client.get("/v1/events", params=params, headers=reader_headers)
            assert r.status_code == 200, r.text
            body = r.json()
            seen.extend(e["id"] for e in body["items"])
            cursor = body["next_cursor"]
            if finished and not body["items"]:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(d, rid) for d in districts for rid in returnees[d]))
    done.set()
    await reading

    async with db.sessionmaker() as s:
        stored = [str(r[0]) for r in (await s.execute(sa.text("SELECT id FROM event ORDER BY key, pos"))).all()]
        positions = [r[0] for r in (await s.execute(sa.text("SELECT pos FROM event ORDER BY pos"))).all()]
    assert len(stored) == 2 * sum(len(v) for v in returnees.values())
    assert positions == list(range(1, len(stored) + 1))  # no gaps
    assert len(set(seen)) == len(seen)  # none twice
    assert seen == stored  # none skipped, in commit order
