from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from api.core.context import Caller
from models import AgencyKind, AuditEvent, AuditSubject, Event, Returnee
from tests.conftest import assert_not_stored, assert_problem

WRITE = ["returnees:write", "returnees:read", "pii:read"]
NIK_F = "6107074505900001"  # woman, born 05-05-1990, Jagoi Babang
NIK_M = "6107010101850002"  # man, born 01-01-1985


def rec(ref: str, **over: Any) -> dict[str, Any]:
    base = {
        "source_ref": ref,
        "full_name": "Siti Aminah",
        "nik": NIK_F,
        "sex": "F",
        "birth_date": "1990-05-05",
        "origin_district": "61.07",
        "origin_subdistrict": "61.07.07",
        "returned_from_country": "MY",
        "returned_from_region": "Sarawak",
        "return_type": "deported",
        "return_date": "2025-03-14",
        "entry_point": "PLBN Jagoi Babang",
        "trafficking_status": "possible",
        "control_methods": ["withholds_documents", "debt_bondage"],
        "exploitation_types": ["forced_labour"],
        "recruiter_relationship": "agency",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


async def bp3mi(make_party, scopes=WRITE):
    return await make_party("BP3MI-KALBAR", "61", scopes)


async def push(client, party, records, headers=None, **params):
    h = await party.headers()
    h.update(headers or {})
    return await client.post("/v1/returnees/batch", json={"records": records}, headers=h, params=params)


async def count(db, model) -> int:
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()


async def test_mixed_batch_gives_each_record_its_result(client, make_party, db):
    party = await bp3mi(make_party)
    records = [
        rec("A-1"),
        rec("A-2", nik="6107074505900"),  # 13 digits
        rec("A-3", nik=None, origin_district="61.99", origin_subdistrict=None),
        rec("A-4", nik=None, full_name=...),
        rec("A-1", full_name="Someone Else", nik=None),
        rec("A-5", nik=None, origin_subdistrict="61.01.01"),
        rec("A-6", nik="6107013202900001"),  # 32-02: no such day
        rec("A-7", nik=None, returned_from_country="my", control_methods=["magic"]),
        "not an object",
    ]
    r = await push(client, party, records)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["index"] for x in res] == list(range(len(records)))
    assert [x["status"] for x in res] == ["created"] + ["rejected"] * 8
    assert res[0]["errors"] == [] and res[0]["warnings"] == [] and uuid.UUID(res[0]["id"])
    assert [e["field"] for e in res[1]["errors"]] == ["nik"]
    assert "16 digits" in res[1]["errors"][0]["message"]
    assert [e["field"] for e in res[2]["errors"]] == ["origin_district"]
    assert [e["field"] for e in res[3]["errors"]] == ["full_name"]
    assert res[4]["source_ref"] == "A-1" and res[4]["id"] is None
    assert [e["field"] for e in res[4]["errors"]] == ["source_ref"]
    assert "record 0" in res[4]["errors"][0]["message"]
    assert [e["field"] for e in res[5]["errors"]] == ["origin_subdistrict"]
    assert [e["field"] for e in res[6]["errors"]] == ["nik"]
    assert {e["field"] for e in res[7]["errors"]} == {"returned_from_country", "control_methods.0"}
    assert res[8]["source_ref"] is None and res[8]["errors"][0]["field"] == "record"
    assert r.json()["notices"] == []
    assert await count(db, Returnee) == 1


async def test_nik_disagreeing_with_sex_or_birth_date_is_a_warning(client, make_party):
    party = await bp3mi(make_party)
    r = await push(client, party, [rec("W-1", sex="M"), rec("W-2", nik=NIK_M, sex="M", birth_date="1986-01-01"),
                                   rec("W-3", nik=NIK_M, sex="M", birth_date="1985-01-01")])
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["created"] * 3
    assert len(res[0]["warnings"]) == 1 and "woman" in res[0]["warnings"][0]
    assert len(res[1]["warnings"]) == 1 and "birth" in res[1]["warnings"][0]
    assert res[2]["warnings"] == []


async def test_repush_is_unchanged_and_writes_nothing(client, make_party, db):
    party = await bp3mi(make_party)
    batch = [rec(f"R-{i}", nik=None, full_name=f"Orang {i}") for i in range(5)]
    first = (await push(client, party, batch)).json()["results"]
    assert {x["status"] for x in first} == {"created"}
    events = await count(db, Event)
    assert events == 5
    async with db.read() as conn:
        before = (await conn.execute(sa.select(Returnee.id, Returnee.updated_at, Returnee.version))).all()
    again = (await push(client, party, batch)).json()["results"]
    assert [x["status"] for x in again] == ["unchanged"] * 5
    assert [x["id"] for x in again] == [x["id"] for x in first]
    assert await count(db, Event) == events
    async with db.read() as conn:
        after = (await conn.execute(sa.select(Returnee.id, Returnee.updated_at, Returnee.version))).all()
    assert sorted(before) == sorted(after)


async def test_changing_a_field_updates_and_bumps_the_version(client, make_party, db):
    party = await bp3mi(make_party)
    first = (await push(client, party, [rec("U-1"), rec("U-2", nik=NIK_M, sex="M", birth_date=None)])).json()
    rid = first["results"][0]["id"]
    h = await party.headers()
    r = await client.get(f"/v1/returnees/{rid}", headers=h)
    assert r.headers["etag"] == '"1"' and r.json()["trafficking_status"] == "possible"
    second = (await push(client, party, [rec("U-1", trafficking_status="actual"),
                                         rec("U-2", nik=NIK_M, sex="M", birth_date=None)])).json()
    assert [x["status"] for x in second["results"]] == ["updated", "unchanged"]
    assert second["results"][0]["id"] == rid
    r = await client.get(f"/v1/returnees/{rid}", headers=h)
    body = r.json()
    assert r.headers["etag"] == '"2"' and body["version"] == 2
    assert body["trafficking_status"] == "actual"
    assert body["updated_at"] > body["created_at"] or body["updated_at"] == body["created_at"]
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(Event.type, Event.data, Event.region, Event.audience)
                                   .order_by(Event.pos))).all()
    assert [r_.type for r_ in rows] == ["returnee.created", "returnee.created", "returnee.updated"]
    assert rows[-1].region == "61.07" and rows[-1].audience == "BP3MI-KALBAR"
    for row in rows:
        assert NIK_F not in row.data and NIK_M not in row.data and "Siti" not in row.data


async def test_same_nik_under_two_refs_is_one_person(client, make_party):
    party = await bp3mi(make_party)
    res = (await push(client, party, [rec("P-1"), rec("P-2", return_date="2025-05-01"),
                                      rec("P-3", nik=None), rec("P-4", nik=None)])).json()["results"]
    res += (await push(client, party, [rec("P-5", nik="6107-0745-0590-0001")])).json()["results"]
    h = await party.headers()
    persons = [(await client.get(f"/v1/returnees/{x['id']}", headers=h)).json()["person_id"] for x in res]
    assert persons[0] == persons[1] == persons[4]
    assert len({persons[0], persons[2], persons[3]}) == 3


async def test_pii_masked_without_pii_read_and_never_stored_in_clear(client, make_party, db, backend):
    party = await bp3mi(make_party)
    rid = (await push(client, party, [rec("M-1", passport_number="c 1234567", phone="+62 812-3456-7890")])).json()[
        "results"][0]["id"]
    clear = (await client.get(f"/v1/returnees/{rid}", headers=await party.headers())).json()
    assert clear["nik"] == NIK_F and clear["passport_number"] == "C1234567" and clear["phone"] == "+6281234567890"
    assert clear["pii_masked"] is False
    reader = await make_party("DINSOS-BENGKAYANG", "61.07", ["returnees:read"])
    masked = (await client.get(f"/v1/returnees/{rid}", headers=await reader.headers())).json()
    assert masked["nik"] is None and masked["passport_number"] is None and masked["phone"] is None
    assert masked["nik_on_file"] and masked["passport_on_file"] and masked["phone_on_file"]
    assert masked["pii_masked"] is True
    listed = (await client.get("/v1/returnees", headers=await reader.headers())).json()["items"]
    assert listed[0]["nik"] is None and listed[0]["nik_on_file"] is True
    # nowhere in the database in plain text
    await assert_not_stored(db, backend, [NIK_F, "C1234567", "81234567890"], visible="Siti Aminah")


async def test_idempotency_key(client, make_party, db):
    party = await bp3mi(make_party)
    batch = [rec("I-1")]
    r1 = await push(client, party, batch, headers={"Idempotency-Key": "k-1"})
    assert r1.status_code == 200 and "idempotent-replayed" not in r1.headers
    r2 = await push(client, party, batch, headers={"Idempotency-Key": "k-1"})
    assert r2.status_code == 200 and r2.headers["idempotent-replayed"] == "true"
    assert r2.json() == r1.json() and r2.json()["results"][0]["status"] == "created"
    assert_problem(await push(client, party, [rec("I-2")], headers={"Idempotency-Key": "k-1"}), 422,
                   "idempotency-key-reused")
    # keys are per client: another client of the same agency may use the same key
    other = await bp3mi(make_party)
    r3 = await push(client, other, batch, headers={"Idempotency-Key": "k-1"})
    assert r3.status_code == 200 and "idempotent-replayed" not in r3.headers
    assert r3.json()["results"][0]["status"] == "unchanged"
    assert await count(db, Returnee) == 1


async def test_district_cannot_see_another_districts_returnees(client, make_party):
    party = await bp3mi(make_party)
    res = (await push(client, party, [rec("D-1"), rec("D-2", nik=None, origin_district="61.01",
                                                       origin_subdistrict="61.01.01")])).json()["results"]
    bengkayang, sambas = res[0]["id"], res[1]["id"]
    dp3a = await make_party("DP3A-SAMBAS", "61.01", ["returnees:read"])
    h = await dp3a.headers()
    assert_problem(await client.get(f"/v1/returnees/{bengkayang}", headers=h), 404, "not-found")
    assert (await client.get(f"/v1/returnees/{sambas}", headers=h)).status_code == 200
    ids = [x["id"] for x in (await client.get("/v1/returnees", headers=h)).json()["items"]]
    assert ids == [sambas]
    assert_problem(await client.get(f"/v1/returnees/{uuid.uuid4()}", headers=h), 404)
    # a sub-district jurisdiction sees its own sub-district only
    camat = await make_party("KECAMATAN-JAGOI", "61.07.07", ["returnees:read"])
    ids = [x["id"] for x in (await client.get("/v1/returnees", headers=await camat.headers())).json()["items"]]
    assert ids == [bengkayang]
    # the agency that pushed a record sees it wherever it is (a border post of BP3MI writes for
    # every district of the province)
    pusher = await make_party("BP3MI-SAMBAS-POS", "61.01", ["returnees:write", "returnees:read"],
                              kind=AgencyKind.migrant_protection)
    own = (await push(client, pusher, [rec("D-3", nik=None)])).json()["results"][0]["id"]
    assert (await client.get(f"/v1/returnees/{own}", headers=await pusher.headers())).status_code == 200


async def test_scopes(client, make_party):
    reader = await make_party("DINSOS-BENGKAYANG", "61.07", ["returnees:read"])
    assert_problem(await push(client, reader, [rec("S-1")]), 403, "insufficient-scope")
    writer = await make_party("BP3MI-KALBAR", "61", ["returnees:write"])
    assert_problem(await client.get("/v1/returnees", headers=await writer.headers()), 403)
    assert_problem(await client.get("/v1/returnees"), 401)


async def test_list_filters_and_pagination(client, make_party):
    party = await bp3mi(make_party)
    records = [
        rec(f"L-{i:02d}", nik=None, return_date=f"2025-0{1 + i % 6}-10",
            trafficking_status=["unknown", "possible", "actual"][i % 3],
            origin_district="61.07" if i % 4 else "61.01", origin_subdistrict=None)
        for i in range(23)
    ]
    await push(client, party, records)
    h = await party.headers()

    async def all_pages(**params):
        seen, cursor = [], None
        while True:
            q = {**params, **({"cursor": cursor} if cursor else {})}
            r = await client.get("/v1/returnees", headers=h, params=q)
            assert r.status_code == 200, r.text
            body = r.json()
            seen += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    pages = await all_pages(limit=5)
    assert len(pages) == 23 and len({x["id"] for x in pages}) == 23
    first = (await client.get("/v1/returnees", headers=h, params={"limit": 5})).json()
    assert len(first["items"]) == 5 and first["next_cursor"]
    assert len((await client.get("/v1/returnees", headers=h)).json()["items"]) == 23
    sambas = await all_pages(district="61.01", limit=2)
    assert {x["source_ref"] for x in sambas} == {f"L-{i:02d}" for i in range(0, 23, 4)}
    actual = await all_pages(trafficking_status="actual")
    assert {x["trafficking_status"] for x in actual} == {"actual"} and len(actual) == 7
    spring = await all_pages(returned_from="2025-02-01", returned_to="2025-03-31")
    assert spring and all("2025-02-01" <= x["return_date"] <= "2025-03-31" for x in spring)
    assert len(spring) == sum(1 for i in range(23) if 1 + i % 6 in (2, 3))
    later = await all_pages(updated_since="2100-01-01T00:00:00Z")
    assert later == []
    assert len(await all_pages(updated_since="2000-01-01T00:00:00Z")) == 23
    assert_problem(await client.get("/v1/returnees", headers=h, params={"limit": 501}), 422)
    assert_problem(await client.get("/v1/returnees", headers=h, params={"cursor": "nonsense"}), 400)
    assert_problem(await client.get("/v1/returnees", headers=h, params={"trafficking_status": "maybe"}), 422)


async def test_reads_are_audited(client, make_party, db):
    party = await bp3mi(make_party)
    rid = (await push(client, party, [rec("AU-1")])).json()["results"][0]["id"]
    reader = await make_party("DINSOS-BENGKAYANG", "61.07", ["returnees:read"])
    await client.get(f"/v1/returnees/{rid}", headers=await reader.headers())
    await client.get("/v1/returnees", headers=await party.headers())
    async with db.read() as conn:
        rows = (await conn.execute(
            sa.select(AuditEvent.action, AuditEvent.agency, AuditEvent.body)
            .join(AuditSubject, AuditSubject.event_id == AuditEvent.id)
            .where(AuditSubject.resource_type == "returnee", AuditSubject.resource_id == rid)
            .order_by(AuditEvent.seq)
        )).all()
    assert [(r.action, r.agency) for r in rows] == [
        ("returnee.batch", "BP3MI-KALBAR"),
        ("returnee.read", "DINSOS-BENGKAYANG"),
        ("returnee.list", "BP3MI-KALBAR"),
    ]
    assert '"pii":false' in rows[1].body and '"pii":true' in rows[2].body
    assert '"created":1' in rows[0].body
    # a denied read is audited too
    dp3a = await make_party("DP3A-SAMBAS", "61.01", ["returnees:read"])
    await client.get(f"/v1/returnees/{rid}", headers=await dp3a.headers())
    async with db.read() as conn:
        denied = (await conn.execute(
            sa.select(AuditEvent.outcome).where(AuditEvent.agency == "DP3A-SAMBAS", AuditEvent.resource_id == rid)
        )).scalars().all()
    assert denied == ["denied"]


async def test_batch_limits(client, make_party):
    party = await bp3mi(make_party)
    body = assert_problem(await push(client, party, [rec(f"X-{i}", nik=None) for i in range(1001)]), 422,
                          "validation-error")
    assert body["errors"][0]["field"] == "records"
    assert_problem(await client.post("/v1/returnees/batch", json={"items": []}, headers=await party.headers()),
                   422)
    big = [rec(f"Y-{i}", nik=None, address="x" * 500, employer="y" * 200, sector="z" * 100) for i in range(1000)]
    r = await push(client, party, big)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
    r = await push(client, party, [])
    assert r.status_code == 200 and r.json() == {"results": [], "notices": []}


async def test_idempotency_key_in_flight_is_409_on_postgresql(client, make_party, db, backend):
    if backend.name != "postgresql":
        return  # SQLite runs one writer at a time: a second request waits instead
    import zlib

    party = await bp3mi(make_party)
    key = "k-busy"
    lock_id = zlib.crc32(f"{party.client_id}\x00{key}".encode()) - 2**31
    async with db.engine.connect() as holder:  # as if the first request were still running
        await holder.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        body = assert_problem(await push(client, party, [rec("B-1")], headers={"Idempotency-Key": key}), 409,
                              "conflict")
        assert "still being processed" in body["detail"]
        await holder.rollback()
    r = await push(client, party, [rec("B-1")], headers={"Idempotency-Key": key})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "created"


async def test_notify_raises_one_notice_per_district(client, make_party, db):
    import orjson

    from models import Notice

    party = await bp3mi(make_party, WRITE + ["notices:write", "notices:read"])
    batch = [rec("N-1"), rec("N-2", nik=None, origin_district="61.01", origin_subdistrict=None),
             rec("N-3", nik=None, full_name="Dewi")]
    r = await push(client, party, batch, notify="true")
    assert r.status_code == 200, r.text
    ids = [x["id"] for x in r.json()["results"]]
    notices = {n["district"]: n for n in r.json()["notices"]}
    assert set(notices) == {"61.07", "61.01"}
    assert notices["61.07"]["returnee_count"] == 2 and notices["61.01"]["returnee_count"] == 1
    assert notices["61.07"]["issued_by"] == "BP3MI-KALBAR"
    sambas = await make_party("DP3A-SAMBAS", "61.01", ["notices:read"])
    listed = (await client.get("/v1/notices", headers=await sambas.headers())).json()["items"]
    assert [n["id"] for n in listed] == [notices["61.01"]["id"]]
    detail = (await client.get(f"/v1/notices/{notices['61.07']['id']}", headers=await party.headers())).json()
    assert sorted(detail["returnee_ids"]) == sorted([ids[0], ids[2]])
    # a re-push changes nothing, so it raises no notice either
    again = await push(client, party, batch, notify="true")
    assert again.json()["notices"] == [] and await count(db, Notice) == 2
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(Event.type, Event.data, Event.region).order_by(Event.pos))).all()
    assert {row.region for row in rows} == {"61.07", "61.01"}
    for row in rows:
        if row.type.startswith("returnee."):
            assert set(orjson.loads(row.data)) == {"id", "source_ref", "origin_district", "trafficking_status"}


async def test_notify_needs_notices_write(client, make_party, db):
    party = await bp3mi(make_party)
    r = await push(client, party, [rec("N-1")], notify="true")
    assert_problem(r, 403)
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="notices:write"'
    assert await count(db, Returnee) == 0


async def test_batch_outcome_names_the_districts_touched(make_party, db):
    from api.core.unit import operator_unit
    from api.returnees import service

    await bp3mi(make_party)
    writer = Caller(client_id="t", agency="BP3MI-KALBAR", agency_kind=AgencyKind.migrant_protection, jurisdiction="61",
                    scopes=frozenset({"returnees:write"}), token_id="t")
    records = [rec("T-1"), rec("T-2", nik=None, origin_district="61.01", origin_subdistrict=None), rec("T-3", nik="x")]
    async with operator_unit(db, "test") as session:
        outcome = await service.upsert_batch(session, writer, records)
    ids = [r["id"] for r in outcome.results]
    assert outcome.touched == {"61.07": [ids[0]], "61.01": [ids[1]]}
    assert outcome.counts == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    async with operator_unit(db, "test") as session:
        again = await service.upsert_batch(session, writer, records[:2])
    assert again.touched == {} and again.counts["unchanged"] == 2


async def test_blank_optional_fields_are_absent_and_nul_is_refused(client, make_party):
    party = await bp3mi(make_party)
    res = (await push(client, party, [rec("E-1", nik="", passport_number=" ", origin_subdistrict="", entry_point=""),
                                      rec("E-2", nik=None, full_name="Siti\u0000Aminah"),
                                      rec("E-3", nik=None, full_name="  ")])).json()["results"]
    assert [x["status"] for x in res] == ["created", "rejected", "rejected"]
    assert [e["field"] for e in res[1]["errors"]] == ["full_name"]
    assert [e["field"] for e in res[2]["errors"]] == ["full_name"]
    body = (await client.get(f"/v1/returnees/{res[0]['id']}", headers=await party.headers())).json()
    assert body["nik"] is None and body["passport_number"] is None and body["origin_subdistrict"] is None


async def test_a_source_ref_reused_for_another_person_is_refused_not_overwritten(client, make_party):
    """A source_ref names one person: a push of another NIK, or of another name and birth date,
    under it is rejected with its code (the stored record stays, re-pushes do not flip it);
    a correction of the name, or of the birth date, is an update."""
    party = await bp3mi(make_party)
    first = (await push(client, party, [rec("R-1"), rec("R-2", nik=None)])).json()["results"]
    assert [r["status"] for r in first] == ["created", "created"]
    other = rec("R-1", full_name="Budi Santoso", nik=NIK_M, sex="M", birth_date="1985-01-01")
    other_no_nik = rec("R-2", full_name="Budi Santoso", nik=None, sex="M", birth_date="1985-01-01")
    for _ in range(2):  # the same on every re-push: nothing flips
        r = await push(client, party, [other, other_no_nik])
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["rejected", "rejected"], results
        again = (await push(client, party, [rec("R-1")])).json()["results"]
        assert again[0]["status"] == "unchanged", again
        for x in results[:2]:
            assert x["code"] == "source-ref-reused" and x["id"] is None, x
            assert [e["field"] for e in x["errors"]] == ["source_ref"], x
        assert "NIK" in results[0]["errors"][0]["message"]
        assert "name and birth date" in results[1]["errors"][0]["message"]
    stored = (await client.get(f"/v1/returnees/{first[0]['id']}", headers=await party.headers())).json()
    assert stored["full_name"] == "Siti Aminah" and stored["nik"] == NIK_F and stored["version"] == 1
    # another NIK with another name only is another person too
    r = (await push(client, party, [rec("R-1", full_name="Budi Santoso", nik=NIK_M)])).json()["results"]
    assert r[0]["code"] == "source-ref-reused", r
    # corrections of the same person are updates: the name, the birth date, the NIK alone
    fixed = (await push(client, party, [rec("R-1", full_name="Siti Aminah binti Ahmad"),
                                        rec("R-2", nik=None, birth_date="1990-05-06")])).json()["results"]
    assert [x["status"] for x in fixed] == ["updated", "updated"], fixed
    renumbered = (await push(client, party, [rec("R-1", full_name="Siti Aminah binti Ahmad",
                                                 nik="6107074505900002")])).json()["results"]
    assert renumbered[0]["status"] == "updated", renumbered
    assert all("code" not in x or x["code"] is None for x in fixed)
