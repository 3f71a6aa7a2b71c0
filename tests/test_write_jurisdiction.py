"""Where a caller may write (api.core.access.may_write): records whose origin lies in its
jurisdiction, and notices to a district in it; BP3MI, the border intake, for every district
of its province. A batch rejects only its records outside; a notice outside is a 403."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from api.core import access
from api.core.context import Caller
from models import AgencyKind, Notice, Returnee
from tests.conftest import assert_problem
from tests.returnee_rows import insert_returnees


def record(ref: str, district: str, subdistrict: str | None = None, **over: Any) -> dict[str, Any]:
    return {"source_ref": ref, "full_name": "Siti Aminah", "sex": "F", "origin_district": district,
            "origin_subdistrict": subdistrict, "return_type": "deported", "return_date": "2025-03-14", **over}


async def push(client, party, records, **params):
    return await client.post("/v1/returnees/batch", json={"records": records}, headers=await party.headers(),
                             params=params)


async def count(db, model, *where) -> int:
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(model).where(*where))).scalar_one()


def caller(kind: AgencyKind, jurisdiction: str) -> Caller:
    return Caller(client_id="c", agency="A", agency_kind=kind, jurisdiction=jurisdiction,
                  scopes=frozenset(), token_id="t")


@pytest.mark.parametrize("kind,jurisdiction,region,allowed", [
    (AgencyKind.women_child_protection, "61.01", "61.01", True),
    (AgencyKind.women_child_protection, "61.01", "61.01.02", True),
    (AgencyKind.women_child_protection, "61.01", "61.07", False),
    (AgencyKind.women_child_protection, "61.01", "61.07.07", False),
    (AgencyKind.women_child_protection, "61.01", "61", False),
    (AgencyKind.women_child_protection, "61", "61.07.07", True),
    (AgencyKind.police, "61.07.07", "61.07", False),
    (AgencyKind.police, "61.07.07", "61.07.07", True),
    (AgencyKind.social_services, "61.01", "61.010", False),  # a prefix is not a region
    (AgencyKind.migrant_protection, "61.03", "61.07", True),  # a BP3MI post: the whole province
    (AgencyKind.migrant_protection, "61.03", "61.07.07", True),
    (AgencyKind.migrant_protection, "61.03", "62.01", False),  # not another province
    (AgencyKind.task_force, "61.07", "61.01", False),
])
def test_may_write(kind, jurisdiction, region, allowed):
    assert access.may_write(caller(kind, jurisdiction), region) is allowed


async def test_a_district_writer_creates_only_its_own_districts_returnees(client, make_party, db):
    sambas = await make_party("DP3A-SAMBAS", "61.01", "returnees:write returnees:read notices:write",
                              kind=AgencyKind.women_child_protection)
    r = await push(client, sambas, [record("W-1", "61.01"), record("W-2", "61.07", "61.07.07"),
                                    record("W-3", "61.01", "61.01.02"), record("W-4", "61.07")])
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["created", "rejected", "created", "rejected"]
    for rejected in (res[1], res[3]):
        assert rejected["id"] is None
        assert [e["field"] for e in rejected["errors"]] == ["origin_district"]
        assert "61.07" in rejected["errors"][0]["message"] and "61.01" in rejected["errors"][0]["message"]
    assert await count(db, Returnee) == 2
    assert await count(db, Returnee, Returnee.origin_district == "61.07") == 0


async def test_an_update_cannot_move_a_record_out(client, make_party, db):
    sambas = await make_party("DP3A-SAMBAS", "61.01", "returnees:write returnees:read",
                              kind=AgencyKind.women_child_protection)
    first = (await push(client, sambas, [record("W-1", "61.01")])).json()["results"][0]
    moved = (await push(client, sambas, [record("W-1", "61.07")])).json()["results"][0]
    assert moved["status"] == "rejected" and moved["errors"][0]["field"] == "origin_district"
    got = (await client.get(f"/v1/returnees/{first['id']}", headers=await sambas.headers())).json()
    assert got["origin_district"] == "61.01" and got["version"] == 1


async def test_a_subdistrict_writer_names_its_subdistrict(client, make_party, db):
    puskesmas = await make_party("PUSKESMAS-JAGOI", "61.07.07", "returnees:write returnees:read",
                                 kind=AgencyKind.health)
    res = (await push(client, puskesmas, [record("S-1", "61.07", "61.07.07"), record("S-2", "61.07"),
                                          record("S-3", "61.07", "61.07.05")])).json()["results"]
    assert [x["status"] for x in res] == ["created", "rejected", "rejected"]
    assert [e["field"] for e in res[1]["errors"]] == ["origin_subdistrict"]
    assert [e["field"] for e in res[2]["errors"]] == ["origin_subdistrict"]


async def test_the_border_intake_writes_for_every_district(client, make_party, db):
    """A BP3MI post of one district receives deportees of them all, and tells each district."""
    post = await make_party("BP3MI-POS-ENTIKONG", "61.03", "returnees:write returnees:read notices:write notices:read",
                            kind=AgencyKind.migrant_protection)
    r = await push(client, post, [record("B-1", "61.07", "61.07.07"), record("B-2", "61.01"),
                                  record("B-3", "61.03")], notify="true")
    assert [x["status"] for x in r.json()["results"]] == ["created"] * 3
    assert sorted(n["district"] for n in r.json()["notices"]) == ["61.01", "61.03", "61.07"]
    # and a notice by hand, to a district outside its own jurisdiction
    ids = await insert_returnees(db, "BP3MI-POS-ENTIKONG", "61.05", 1)
    n = await client.post("/v1/notices", json={"district": "61.05", "returnee_ids": [str(i) for i in ids]},
                          headers=await post.headers())
    assert n.status_code == 201, n.text


async def test_a_district_cannot_raise_a_notice_into_another_districts_inbox(client, make_party, db):
    sambas = await make_party("DP3A-SAMBAS", "61.01", "returnees:write returnees:read notices:write notices:read",
                              kind=AgencyKind.women_child_protection)
    bengkayang = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read", kind=AgencyKind.women_child_protection)
    # even about returnees it may read (its agency pushed them, before writes were limited, say)
    theirs = await insert_returnees(db, "DP3A-SAMBAS", "61.07", 2)
    body = {"district": "61.07", "returnee_ids": [str(i) for i in theirs], "summary": "Come and see"}
    problem = assert_problem(await client.post("/v1/notices", json=body, headers=await sambas.headers()), 403,
                             "/outside-jurisdiction")
    assert problem["errors"] == [{"field": "district",
                                  "message": "61.07 is outside the region your agency may write for (61.01)"}]
    assert await count(db, Notice) == 0
    assert (await client.get("/v1/notices", headers=await bengkayang.headers())).json()["items"] == []
    # its own district, fine
    own = await insert_returnees(db, "DP3A-SAMBAS", "61.01", 1)
    r = await client.post("/v1/notices", json={"district": "61.01", "returnee_ids": [str(own[0])]},
                          headers=await sambas.headers())
    assert r.status_code == 201, r.text
    # notify=true raises notices only where it may write: its records lie there anyway
    r = await push(client, sambas, [record("N-1", "61.01"), record("N-2", "61.07")], notify="true")
    assert [x["status"] for x in r.json()["results"]] == ["created", "rejected"]
    assert [n["district"] for n in r.json()["notices"]] == ["61.01"]
    assert await count(db, Notice, Notice.district == "61.07") == 0


async def test_a_province_agency_writes_for_its_province(client, make_party, db):
    province = await make_party("DINSOS-KALBAR", "61", "returnees:write returnees:read notices:write",
                                kind=AgencyKind.social_services)
    res = (await push(client, province, [record("P-1", "61.07"), record("P-2", "61.01", "61.01.01")])).json()
    assert [x["status"] for x in res["results"]] == ["created", "created"]
