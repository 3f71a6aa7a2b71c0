"""The district's register of migrant workers (issue 11, item 3), on the demo data: the person
view built from departures and returnee records, its protected counts (equal to direct SQL counts
after the statistics' rounding rule), a second return flagged, jurisdiction and masking."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.core.db import Database
from api.stats.service import KEY_SPACE, record_key, rounded, stats_secret
from models import Departure, Returnee
from tests.demo_world import DemoCopy
from tests.reply_shapes import CheckReplies


@dataclass
class World:
    http: httpx.AsyncClient
    db: Database
    tokens: dict[str, str]

    def bearer(self, code: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[code]}"}


@pytest.fixture(scope="module")
async def world(module_demo: DemoCopy) -> AsyncIterator[World]:
    settings, demo = module_demo.settings, module_demo.demo
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        checked = CheckReplies(app)
        transport = httpx.ASGITransport(app=checked, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = {}
            for code, c in demo["clients"].items():
                r = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(c["client_id"], c["client_secret"]))
                tokens[code] = r.json()["access_token"]
            yield World(http, app.state.services.db, tokens)
        assert not checked.mismatches, checked.mismatches


async def _truth(db: Database) -> dict[uuid.UUID, dict[str, Any]]:
    """Per person, straight from the departure and returnee tables: origin of the latest record,
    how often they left and came back, and their status by the register's documented rule."""
    records: dict[uuid.UUID, list[tuple[date, int, Any, str | None, str | None]]] = {}
    async with db.read() as conn:
        for pid, day, district, sub, village in await conn.execute(sa.select(
                Departure.person_id, Departure.departure_date, Departure.origin_district,
                Departure.origin_subdistrict, Departure.origin_village)):
            records.setdefault(pid, []).append((day, 0, (district, sub), None, village))
        for pid, day, district, sub, kind in await conn.execute(sa.select(
                Returnee.person_id, Returnee.return_date, Returnee.origin_district, Returnee.origin_subdistrict,
                Returnee.return_type)):
            records.setdefault(pid, []).append((day, 1, (district, sub), str(kind), None))
    out = {}
    for pid, recs in records.items():
        recs.sort(key=lambda r: (r[0], r[1]))
        last = recs[-1]
        returns = [r for r in recs if r[1] == 1]
        villages = [r[4] for r in recs if r[4] and r[2] == last[2]]
        out[pid] = {
            "district": last[2][0], "subdistrict": last[2][1], "village": villages[-1] if villages else None,
            "departed": any(r[1] == 0 for r in recs), "repeat_return": len(returns) >= 2,
            "status": "abroad" if last[1] == 0 else ("deported" if last[3] == "deported" else "returned"),
        }
    return out


@pytest.mark.parametrize("by", ["subdistrict", "village"])
@pytest.mark.parametrize("who", ["GUGUS-TPPO-BENGKAYANG", "DP3A-KALBAR"])
async def test_counts_are_the_direct_counts_after_the_rounding_rule(world: World, by: str, who: str) -> None:
    r = await world.http.get("/v1/register/counts", params={"district": "61.07", "by": by}, headers=world.bearer(who))
    assert r.status_code == 200, r.text
    body = r.json()
    base, threshold = body["rounding_base"], body["threshold"]
    assert (base, threshold) == (5, 5)
    secret = stats_secret(world.db.settings.index_key_bytes)
    truth = {pid: p for pid, p in (await _truth(world.db)).items() if p["district"] == "61.07"}
    cells: dict[tuple[str | None, str], list[uuid.UUID]] = {}
    for pid, p in truth.items():
        cell = p[by]
        cells.setdefault((cell, "persons"), []).append(pid)
        for flag in ("departed", "repeat_return"):
            if p[flag]:
                cells.setdefault((cell, flag), []).append(pid)
        cells.setdefault((cell, p["status"]), []).append(pid)

    def expected(pids: list[uuid.UUID]) -> int | None:
        n = len(pids)
        if n == 0:
            return 0
        if n < threshold:
            return None
        return rounded(n, sum(record_key(secret, f"person|{p.hex}") for p in pids) % KEY_SPACE, base)

    rows = {row[by]: row for row in body["rows"]}
    assert set(rows) == {cell for cell, _ in cells}
    checked = Counter[str]()
    for cell, row in rows.items():
        persons = expected(cells[(cell, "persons")])
        assert row["persons"] == persons, (cell, row)
        assert row["suppressed"] == (persons is None)
        for measure in ("departed", "abroad", "returned", "deported", "repeat_return"):
            want = expected(cells.get((cell, measure), []))
            want = None if persons is None or want is None else min(want, persons)
            assert row[measure] == want, (cell, measure, row)
            checked["protected" if want is None and cells.get((cell, measure)) else "published"] += 1
            assert row[measure] is None or row[measure] % base == 0
    assert checked["protected"] and checked["published"], checked  # the demo has cells of both kinds
    assert body["total"] == expected(list(truth))
    if by == "subdistrict":
        assert rows["61.07.07"]["name"] == "Jagoi Babang"


async def test_a_second_return_is_flagged_with_an_event(world: World) -> None:
    nik = "6107075204880007"
    person = {"full_name": "Maria Ulan", "nik": nik, "sex": "F", "birth_date": "1988-04-12", "origin_district": "61.07",
              "origin_subdistrict": "61.07.07"}
    bp3mi = world.bearer("BP3MI-KALBAR")
    dep = {**person, "source_ref": "T-DEP-1", "origin_village": "61.07.07.2002", "destination_country": "MY",
           "departure_date": "2024-02-01", "procedural": False}
    r = await world.http.post("/v1/register/departures/batch", json={"records": [dep]}, headers=bp3mi)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "created", r.text
    person_id = r.json()["results"][0]["person_id"]

    def back(ref: str, day: str) -> dict[str, Any]:
        return {**person, "source_ref": ref, "returned_from_country": "MY", "return_type": "deported",
                "return_date": day}

    district = world.bearer("DP3A-BENGKAYANG")
    for n, day in enumerate(("2024-09-01", "2025-08-01")):
        r = await world.http.post("/v1/returnees/batch", json={"records": [back(f"T-RET-{n}", day)]}, headers=bp3mi)
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "created", r.text
        got = await world.http.get(f"/v1/register/persons/{person_id}", headers=district)
        assert got.status_code == 200, got.text
        view = got.json()
        assert (view["returns"], view["repeat_return"], view["status"]) == (n + 1, n == 1, "deported")
    assert view["departures"] == 1 and view["origin_village"] == "61.07.07.2002"
    assert [d["source_ref"] for d in view["departure_records"]] == ["T-DEP-1"]
    assert len(view["return_records"]) == 2
    flagged = await world.http.get("/v1/register/persons", params={"repeat_return": "true", "limit": 200},
                                   headers=district)
    assert person_id in {p["person_id"] for p in flagged.json()["items"]}
    # the event, once, for the district (register:read) and not for another district
    events = await _all_events(world, "DP3A-BENGKAYANG")
    assert [e["data"]["returns"] for e in events if e["type"] == "register.repeat_return"
            and e["data"]["person_id"] == person_id] == [2]
    assert not [e for e in await _all_events(world, "DP3A-SAMBAS") if e["data"].get("person_id") == person_id]
    # a third return is no second flag
    r = await world.http.post("/v1/returnees/batch", json={"records": [back("T-RET-3", "2025-10-01")]}, headers=bp3mi)
    events = await _all_events(world, "DP3A-BENGKAYANG")
    assert len([e for e in events if e["type"] == "register.repeat_return" and e["data"]["person_id"] == person_id]) == 1


async def test_a_new_person_returning_twice_in_one_batch_and_a_corrected_nik(world: World) -> None:
    """The register row of a person the batch itself creates is summed from every record of the
    batch, as one read from the tables would; a corrected NIK moves a record to a new person
    and both rows are summed again."""
    person = {"full_name": "Yuliana Dewi", "nik": "6107074108900031", "sex": "F", "birth_date": "1990-08-01",
              "origin_district": "61.07", "origin_subdistrict": "61.07.07", "returned_from_country": "MY"}
    bp3mi, district = world.bearer("BP3MI-KALBAR"), world.bearer("DP3A-BENGKAYANG")
    first = {**person, "source_ref": "T-TWO-1", "return_type": "repatriated", "return_date": "2024-03-01"}
    second = {**person, "source_ref": "T-TWO-2", "return_type": "deported", "return_date": "2025-03-01"}
    r = await world.http.post("/v1/returnees/batch", json={"records": [first, second]}, headers=bp3mi)
    assert [x["status"] for x in r.json()["results"]] == ["created", "created"], r.text
    ids = [uuid.UUID(x["id"]) for x in r.json()["results"]]
    async with world.db.read() as conn:
        owners = dict((await conn.execute(sa.select(Returnee.id, Returnee.person_id)
                                          .where(Returnee.id.in_(ids)))).all())  # type: ignore[attr-defined]
    assert owners[ids[0]] == owners[ids[1]]
    pid = owners[ids[0]]
    view = (await world.http.get(f"/v1/register/persons/{pid}", headers=district)).json()
    truth = (await _truth(world.db))[pid]
    assert (view["returns"], view["deportations"], view["repeat_return"], view["status"]) == (2, 1, True, "deported")
    assert (view["repeat_return"], view["status"]) == (truth["repeat_return"], truth["status"])
    assert view["last_return"] == "2025-03-01"
    events = await _all_events(world, "DP3A-BENGKAYANG")
    assert [e["data"]["returns"] for e in events if e["type"] == "register.repeat_return"
            and e["data"]["person_id"] == str(pid)] == [2]

    # the second record was someone else's NIK: corrected, it moves to that (new) person
    fixed = {**second, "nik": "6107074108900032"}
    r = await world.http.post("/v1/returnees/batch", json={"records": [fixed]}, headers=bp3mi)
    assert r.json()["results"][0]["status"] == "updated", r.text
    async with world.db.read() as conn:
        moved_to = (await conn.execute(sa.select(Returnee.person_id).where(Returnee.id == ids[1]))).scalar_one()
    assert moved_to != pid
    truth = await _truth(world.db)
    for who, returns, status in ((pid, 1, "returned"), (moved_to, 1, "deported")):
        view = (await world.http.get(f"/v1/register/persons/{who}", headers=district)).json()
        assert (view["returns"], view["repeat_return"], view["status"]) == (returns, False, status), view
        assert (view["repeat_return"], view["status"]) == (truth[who]["repeat_return"], truth[who]["status"])


async def _all_events(world: World, who: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await world.http.get("/v1/events", params={"limit": 500, **({"after": cursor} if cursor else {})},
                                 headers=world.bearer(who))
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        out += items
        if not items:
            return out
        cursor = r.json()["next_cursor"]


async def test_another_districts_person_is_404_and_the_nik_is_masked(world: World) -> None:
    sambas = (await world.http.get("/v1/register/persons", params={"limit": 200},
                                   headers=world.bearer("DP3A-SAMBAS"))).json()["items"]
    bky = (await world.http.get("/v1/register/persons", params={"limit": 200},
                                headers=world.bearer("DP3A-BENGKAYANG"))).json()["items"]
    assert sambas and bky
    assert {p["origin_district"] for p in sambas} == {"61.01"}
    assert {p["origin_district"] for p in bky} == {"61.07"}
    for reader, other in (("DP3A-SAMBAS", bky[0]), ("DP3A-BENGKAYANG", sambas[0])):
        r = await world.http.get(f"/v1/register/persons/{other['person_id']}", headers=world.bearer(reader))
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), r.text
    with_nik = [p for p in bky if p["nik_on_file"]]
    assert with_nik and all(p["nik"] is None and p["pii_masked"] for p in bky)
    full = await world.http.get(f"/v1/register/persons/{with_nik[0]['person_id']}", headers=world.bearer("BP3MI-KALBAR"))
    assert full.status_code == 200 and full.json()["nik"] and len(full.json()["nik"]) == 16


async def test_a_departure_batch_is_idempotent_and_limited_to_the_writers_region(world: World) -> None:
    rec = {"source_ref": "T-SBS-1", "full_name": "Yohanes Apui", "sex": "M", "origin_district": "61.07",
           "origin_subdistrict": "61.07.05", "destination_country": "MY", "departure_date": "2025-05-05",
           "procedural": True}
    sambas = world.bearer("DP3A-SAMBAS")
    r = await world.http.post("/v1/register/departures/batch", json={"records": [rec]}, headers=sambas)
    result = r.json()["results"][0]
    assert result["status"] == "rejected" and [e["field"] for e in result["errors"]] == ["origin_district"]
    own = {**rec, "origin_district": "61.01", "origin_subdistrict": "61.01.01", "origin_village": "61.01.01.2003"}
    first = await world.http.post("/v1/register/departures/batch", json={"records": [own]}, headers=sambas)
    again = await world.http.post("/v1/register/departures/batch", json={"records": [own]}, headers=sambas)
    assert first.json()["results"][0]["status"] == "created"
    assert again.json()["results"][0]["status"] == "unchanged"
    assert again.json()["results"][0]["id"] == first.json()["results"][0]["id"]
    bad = await world.http.post("/v1/register/departures/batch", headers=sambas, json={"records": [
        {**own, "source_ref": "T-SBS-2", "origin_village": "61.07.05.2001"}]})
    assert bad.json()["results"][0]["status"] == "rejected"
    assert [e["field"] for e in bad.json()["results"][0]["errors"]] == ["origin_village"]
