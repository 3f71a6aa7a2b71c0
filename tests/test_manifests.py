"""Arrival manifests, from the consulate's letter to the person located at home, and the people
of other provinces who come home through Kalimantan Barat's border posts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from api.core import clock
from models import AgencyKind, AuditEvent, Returnee
from tests.conftest import assert_problem

MONDAY = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 WIB, Monday 2 March 2026
SURABAYA_NIK = "3578014505900001"  # Kota Surabaya (35.78), a woman born 5 May 1990
BENGKAYANG_NIK = "6107071203910002"  # Jagoi Babang (61.07.07), a man born 12 March 1991


async def parties(make_party: Any) -> dict[str, Any]:
    return {
        "bp3mi": await make_party("BP3MI-KALBAR", "61", "manifests:write manifests:read pii:read returnees:write "
                                  "returnees:read notices:read events:read", kind=AgencyKind.migrant_protection),
        "province": await make_party("DP3A-KALBAR", "61", "manifests:read notices:read returnees:read",
                                     kind=AgencyKind.women_child_protection),
        "bky": await make_party("DP3A-BENGKAYANG", "61.07", "manifests:read manifests:locate notices:read "
                                "returnees:read", kind=AgencyKind.women_child_protection),
        "sambas": await make_party("DP3A-SAMBAS", "61.01", "manifests:read manifests:locate notices:read returnees:read",
                                   kind=AgencyKind.women_child_protection),
        "melawi": await make_party("DP3A-MELAWI", "61.10", "manifests:read manifests:locate returnees:read",
                                   kind=AgencyKind.women_child_protection),
    }


LETTER = {
    "letter_ref": "KJRI-KCH/DEP/2026/0077", "letter_date": "2026-03-01", "expected_date": "2026-03-03",
    "entry_point": "plbn_entikong", "note": "Depot Imigresen Semuja",
    "persons": [
        {"full_name": "Yohanes Ameng", "sex": "M", "birth_date": "1991-03-12", "nik": BENGKAYANG_NIK,
         "origin_subdistrict": None},
        {"full_name": "Maria Goreti", "sex": "F", "origin_district": "61.07", "origin_subdistrict": "61.07.07"},
        {"full_name": "Nurhayati", "sex": "F", "origin_district": "61.01", "passport_number": "C1234567"},
        {"full_name": "Sri Wahyuni", "sex": "F", "nik": SURABAYA_NIK},  # origin read from the NIK: 35.78
        {"full_name": "Andi", "sex": "M"},  # origin not known
    ],
}


async def week(client: Any, party: Any, view: str) -> list[str]:
    r = await client.get("/v1/manifests/persons", params={"view": view}, headers=await party.headers())
    assert r.status_code == 200, r.text
    return [p["full_name"] for p in r.json()["items"]]


async def test_a_deportee_of_jawa_timur_through_entikong(client, make_party, db):
    """Recorded by BP3MI with her real origin and her Jawa Timur NIK; read by BP3MI, the
    province and (once registered) her home district, by no district of Kalimantan Barat."""
    p = await parties(make_party)
    record = {"source_ref": "ENT-2026-0301-17", "full_name": "Sri Wahyuni", "sex": "F", "birth_date": "1990-05-05",
              "nik": SURABAYA_NIK, "origin_district": "35.78", "returned_from_country": "MY",
              "returned_from_region": "Sarawak", "return_type": "deported", "return_date": "2026-03-01",
              "entry_point": "PLBN Entikong"}
    with clock.frozen(MONDAY):
        r = await client.post("/v1/returnees/batch", json={"records": [record]}, headers=await p["bp3mi"].headers())
        assert r.status_code == 200, r.text
        result = r.json()["results"][0]
        assert result["status"] == "created" and result["warnings"] == [], result
        rid = result["id"]
        # a kecamatan the reference does not hold (below the regency it holds Kalbar only)
        bad = r = await client.post("/v1/returnees/batch", headers=await p["bp3mi"].headers(), json={
            "records": [record | {"source_ref": "X-1", "origin_subdistrict": "35.78.01"}]})
        assert bad.json()["results"][0]["status"] == "rejected"
        for who in ("bp3mi", "province"):
            r = await client.get(f"/v1/returnees/{rid}", headers=await p[who].headers())
            assert r.status_code == 200, (who, r.text)
            assert r.json()["origin_district"] == "35.78"
        assert (await client.get(f"/v1/returnees/{rid}", headers=await p["bp3mi"].headers())).json()["nik"] == SURABAYA_NIK
        for who in ("bky", "sambas"):
            assert_problem(await client.get(f"/v1/returnees/{rid}", headers=await p[who].headers()), 404)
            listed = (await client.get("/v1/returnees", headers=await p[who].headers())).json()["items"]
            assert rid not in [x["id"] for x in listed]
        # a district agency may not file people of another province: only the border intake does
        writer = await make_party("DP3A-SAMBAS", "61.01", ["returnees:write"])
        r = await client.post("/v1/returnees/batch", headers=await writer.headers(),
                              json={"records": [record | {"source_ref": "S-1"}]})
        assert r.json()["results"][0]["status"] == "rejected"
        assert [e["field"] for e in r.json()["results"][0]["errors"]] == ["origin_district"]
        home = await make_party("DINSOS-SURABAYA", "35.78", ["returnees:read"], kind=AgencyKind.social_services)
        assert (await client.get(f"/v1/returnees/{rid}", headers=await home.headers())).status_code == 200
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(Returnee.nik_enc).where(Returnee.source_ref == record["source_ref"])))
        assert SURABAYA_NIK not in (stored.scalar_one() or "")


async def test_the_manifest_walk_from_letter_to_located(client, make_party, db):
    p = await parties(make_party)
    with clock.frozen(MONDAY):
        bp3mi = await p["bp3mi"].headers(**{"Idempotency-Key": "letter-0077"})
        r = await client.post("/v1/manifests", json=LETTER, headers=bp3mi)
        assert r.status_code == 201, r.text
        manifest = r.json()
        mid, etag = manifest["id"], r.headers["etag"]
        assert r.headers["location"] == f"/v1/manifests/{mid}"
        again = await client.post("/v1/manifests", json=LETTER, headers=bp3mi)
        assert again.status_code == 201 and again.json()["id"] == mid  # the same request, replayed
        assert_problem(await client.post("/v1/manifests", json=LETTER, headers=await p["bp3mi"].headers()), 409)
        people = {x["full_name"]: x for x in manifest["persons"]}
        assert people["Yohanes Ameng"]["origin_district"] == "61.07"  # from the NIK
        assert people["Sri Wahyuni"]["origin_district"] == "35.78"
        assert people["Sri Wahyuni"]["origin_district_name"] == "Kota Surabaya"
        assert people["Yohanes Ameng"]["nik"] == BENGKAYANG_NIK  # BP3MI holds pii:read
        assert manifest["entry_point_name"] == "PLBN Entikong" and manifest["person_count"] == 5

        # the district sees its own people, masked; another district's people are not there
        r = await client.get(f"/v1/manifests/{mid}", headers=await p["bky"].headers())
        assert r.status_code == 200
        mine = {x["full_name"]: x for x in r.json()["persons"]}
        assert set(mine) == {"Yohanes Ameng", "Maria Goreti"}
        assert mine["Yohanes Ameng"]["nik"] is None and mine["Yohanes Ameng"]["nik_on_file"] is True
        assert mine["Yohanes Ameng"]["pii_masked"] is True
        assert_problem(await client.get(f"/v1/manifests/{mid}", headers=await p["melawi"].headers()), 404)
        nurhayati = people["Nurhayati"]["id"]
        assert_problem(await client.get(f"/v1/manifests/{mid}/persons/{nurhayati}",
                                        headers=await p["bky"].headers()), 404)
        province = await client.get(f"/v1/manifests/{mid}", headers=await p["province"].headers())
        assert len(province.json()["persons"]) == 5

        assert sorted(await week(client, p["bky"], "expected_this_week")) == ["Maria Goreti", "Yohanes Ameng"]
        assert await week(client, p["sambas"], "expected_this_week") == ["Nurhayati"]
        assert await week(client, p["melawi"], "expected_this_week") == []

    tuesday = MONDAY + timedelta(days=1)
    with clock.frozen(tuesday):
        marks = {"arrived_on": "2026-03-03", "persons": [
            {"person_id": x["id"], "status": "not_arrived" if name == "Nurhayati" else "arrived"}
            for name, x in people.items()]}
        assert_problem(await client.post(f"/v1/manifests/{mid}/arrivals", json=marks,
                                         headers=await p["bp3mi"].headers()), 428)
        assert_problem(await client.post(f"/v1/manifests/{mid}/arrivals", json=marks,
                                         headers=await p["bp3mi"].headers(**{"If-Match": '"99"'})), 412)
        r = await client.post(f"/v1/manifests/{mid}/arrivals", json=marks,
                              headers=await p["bp3mi"].headers(**{"If-Match": etag}))
        assert r.status_code == 200, r.text
        assert r.headers["etag"] != etag
        assert r.json()["counts"] == {"arrived": 4, "not_arrived": 1}
        after = {x["full_name"]: x for x in r.json()["persons"]}
        assert after["Andi"]["returnee_id"] is None and after["Andi"]["notice_id"] is None  # origin not known
        assert_problem(await client.post(f"/v1/manifests/{mid}/arrivals", json=marks,
                                         headers=await p["bp3mi"].headers(**{"If-Match": r.headers["etag"]})), 409)

        # Bengkayang's notice, made by the notices' workflow, lists its two returnees
        notice_id = after["Yohanes Ameng"]["notice_id"]
        assert notice_id and after["Maria Goreti"]["notice_id"] == notice_id
        notice = (await client.get(f"/v1/notices/{notice_id}", headers=await p["bky"].headers())).json()
        assert notice["district"] == "61.07" and notice["status"] == "delivered"
        assert sorted(x["name"] for x in notice["returnees"]) == ["Maria Goreti", "Yohanes Ameng"]
        assert notice["entry_point"] == "PLBN Entikong" and notice["arrival_date"] == "2026-03-03"

        # Surabaya's notice waits for an agency there; the province sees it, the districts do not
        waiting = after["Sri Wahyuni"]["notice_id"]
        r = await client.get("/v1/notices", params={"status": "waiting_for_agency"},
                             headers=await p["province"].headers())
        assert [n["id"] for n in r.json()["items"]] == [waiting]
        assert r.json()["items"][0]["district"] == "35.78"
        assert_problem(await client.get(f"/v1/notices/{waiting}", headers=await p["bky"].headers()), 404)

        assert await week(client, p["bky"], "expected_this_week") == []
        assert sorted(await week(client, p["bky"], "arrived_not_located")) == ["Maria Goreti", "Yohanes Ameng"]
        assert await week(client, p["sambas"], "arrived_not_located") == []

        # home: the person's ETag; only the home district records the outcome
        yohanes = after["Yohanes Ameng"]["id"]
        r = await client.get(f"/v1/manifests/{mid}/persons/{yohanes}", headers=await p["bky"].headers())
        person_etag = r.headers["etag"]
        located = {"outcome": "located", "village": "61.07.07.2001", "seen_by": "Kepala Desa Jagoi",
                   "seen_on": "2026-03-03"}
        assert_problem(await client.post(f"/v1/manifests/{mid}/persons/{yohanes}/outcome", json=located,
                                         headers=await p["sambas"].headers(**{"If-Match": person_etag})), 404)
        assert_problem(await client.post(f"/v1/manifests/{mid}/persons/{yohanes}/outcome", json=located,
                                         headers=await p["bp3mi"].headers(**{"If-Match": person_etag})), 403)
        body = assert_problem(await client.post(
            f"/v1/manifests/{mid}/persons/{yohanes}/outcome", json=located | {"village": "61.01.01.2001"},
            headers=await p["bky"].headers(**{"If-Match": person_etag})), 422)
        assert [e["field"] for e in body["errors"]] == ["village"]
        assert_problem(await client.post(f"/v1/manifests/{mid}/persons/{yohanes}/outcome",
                                         json=located | {"seen_by": None},
                                         headers=await p["bky"].headers(**{"If-Match": person_etag})), 422)
        r = await client.post(f"/v1/manifests/{mid}/persons/{yohanes}/outcome", json=located,
                              headers=await p["bky"].headers(**{"If-Match": person_etag}))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "located" and r.json()["located_village"] == "61.07.07.2001"
        assert r.json()["located_village_name"] and r.json()["seen_by"] == "Kepala Desa Jagoi"
        assert r.json()["outcome_by"] == "DP3A-BENGKAYANG"
        assert_problem(await client.post(f"/v1/manifests/{mid}/persons/{yohanes}/outcome", json=located,
                                         headers=await p["bky"].headers(**{"If-Match": r.headers["etag"]})), 409)
        assert await week(client, p["bky"], "arrived_not_located") == ["Maria Goreti"]

    with clock.frozen(tuesday + timedelta(days=8)):
        assert await week(client, p["bky"], "arrived_not_located") == []
        assert await week(client, p["bky"], "not_located_after_7_days") == ["Maria Goreti"]
        assert sorted(await week(client, p["province"], "not_located_after_7_days")) == [
            "Andi", "Maria Goreti", "Sri Wahyuni"]

        # the home agency registers: the waiting notice is delivered to it
        home = await make_party("DINSOS-SURABAYA", "35.78", "notices:read notices:ack manifests:read manifests:locate",
                                kind=AgencyKind.social_services)
        r = await client.get(f"/v1/notices/{waiting}", headers=await home.headers())
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "delivered" and [x["name"] for x in r.json()["returnees"]] == ["Sri Wahyuni"]
        r = await client.get("/v1/notices", params={"status": "waiting_for_agency"},
                             headers=await p["province"].headers())
        assert r.json()["items"] == []
        assert await week(client, home, "not_located_after_7_days") == ["Sri Wahyuni"]

    # every step is an event on the feed
    with clock.frozen(tuesday + timedelta(days=8)):
        r = await client.get("/v1/events", params={"limit": 200}, headers=await p["bp3mi"].headers())
    types = [e["type"] for e in r.json()["items"]]
    for t in ("manifest.created", "manifest.announced", "manifest.person_arrived", "manifest.person_not_arrived",
              "notice.created", "manifest.person_located", "notice.delivered"):
        assert t in types, (t, types)
    # and every read and write of the people is audited, naming them
    async with db.read() as conn:
        actions = set((await conn.execute(sa.select(AuditEvent.action))).scalars())
    assert {"manifest.create", "manifest.read", "manifest.arrivals", "manifest.person_read",
            "manifest.person_list", "manifest.person_outcome", "notice.deliver"} <= actions


async def test_identifiers_are_stored_encrypted(client, make_party, db, backend):
    from tests.conftest import assert_not_stored

    p = await parties(make_party)
    with clock.frozen(MONDAY):
        r = await client.post("/v1/manifests", json=LETTER, headers=await p["bp3mi"].headers())
        assert r.status_code == 201, r.text
    await assert_not_stored(db, backend, [SURABAYA_NIK, BENGKAYANG_NIK, "C1234567"], visible="Nurhayati")


async def test_the_letter_is_checked(client, make_party):
    p = await parties(make_party)
    with clock.frozen(MONDAY):
        h = await p["bp3mi"].headers()
        for bad, field in (
            ({"entry_point": "pelabuhan_tikus"}, "entry_point"),
            ({"expected_date": "2026-02-01"}, "body"),
            ({"persons": []}, "persons"),
            ({"persons": [{"full_name": "X", "sex": "M", "nik": "3599014505900001"}]}, "persons.0.nik"),
            ({"persons": [{"full_name": "X", "sex": "M", "origin_district": "35.99"}]}, "persons.0.origin_district"),
        ):
            body = assert_problem(await client.post("/v1/manifests", json=LETTER | bad, headers=h), 422)
            assert field in [e["field"] for e in body["errors"]], (bad, body)
        # a district agency may not register people of another district
        writer = await make_party("DP3A-SAMBAS", "61.01", ["manifests:write"])
        body = assert_problem(await client.post("/v1/manifests", json=LETTER, headers=await writer.headers()), 403,
                              "outside-jurisdiction")
        assert "persons.0.origin_district" in [e["field"] for e in body["errors"]]


async def test_the_week_lists_page_with_sealed_cursors(client, make_party):
    p = await parties(make_party)
    letter = LETTER | {"persons": [{"full_name": f"Orang {i}", "sex": "M", "origin_district": "61.07"}
                                   for i in range(3)]}
    with clock.frozen(MONDAY):
        assert (await client.post("/v1/manifests", json=letter, headers=await p["bp3mi"].headers())).status_code == 201
        h = await p["bky"].headers()
        seen, cursor = [], None
        while True:
            r = await client.get("/v1/manifests/persons", headers=h, params={
                "view": "expected_this_week", "limit": 1, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            seen += [x["full_name"] for x in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == ["Orang 0", "Orang 1", "Orang 2"]
        first = (await client.get("/v1/manifests/persons", headers=h,
                                  params={"view": "expected_this_week", "limit": 1})).json()["next_cursor"]
        for params in ({"view": "arrived_not_located", "cursor": first}, {"view": "expected_this_week", "cursor": "x"}):
            assert_problem(await client.get("/v1/manifests/persons", headers=h, params=params), 400)
        assert_problem(await client.get("/v1/manifests/persons", headers=h, params={"view": "someday"}), 422)
        listed = (await client.get("/v1/manifests", headers=h)).json()["items"]
        assert [m["letter_ref"] for m in listed] == [LETTER["letter_ref"]]
