"""The console's arrivals and register (issue 12 on the services of issue 11): the district's week
lists are the API's lists, locating a person in the page is the API's rule and in the audit chain
under the officer, the register grid is ``/v1/register/counts``."""

from __future__ import annotations

import html
import io
import re
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from api.core import clock
from models import AuditEvent, Officer
from tests.console_world import ConsoleWorld, console_world, csrf_of
from tests.demo_world import DemoCopy

ANALYST = "analis@dp3a.kalbarprov.go.id"  # DP3A-KALBAR, province 61: stats:read
BKY = "petugas@dp3a.bengkayangkab.go.id"  # DP3A-BENGKAYANG, 61.07: manifests:read manifests:locate
POLICE = "ppa@polres-bengkayang.polri.go.id"  # no manifests:read
PERIOD = {"dari": "2025-01", "sampai": "2025-06"}


@pytest.fixture(scope="module")
async def world(module_demo: DemoCopy) -> AsyncIterator[ConsoleWorld]:
    async for w in console_world(module_demo):
        yield w


async def _entries(w: ConsoleWorld, **where: str) -> list[dict]:
    async with w.app.state.services.db.read() as conn:
        stmt = sa.select(AuditEvent.body).order_by(AuditEvent.seq)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEvent, k) == v)
        return [orjson.loads(b) for b in (await conn.execute(stmt)).scalars()]


async def _officer_id(w: ConsoleWorld, email: str) -> str:
    async with w.app.state.services.db.read() as conn:
        return str((await conn.execute(sa.select(Officer.id).where(Officer.email == email))).scalar_one())


WEEK_VIEWS = ("expected_this_week", "arrived_not_located", "not_located_after_7_days")


def _people(page: str, view: str) -> list[str]:
    """The person ids of one of the week's tables (empty when the table is not shown)."""
    m = re.search(rf'<table class="data people" id="{view}">(.*?)</table>', page, re.S)
    return re.findall(r'<tr data-person="([0-9a-f-]{36})">', m.group(1)) if m else []


async def _api_week(http: httpx.AsyncClient, token: str, view: str) -> list[dict]:
    r = await http.get("/v1/manifests/persons", params={"view": view, "limit": 500},
                       headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return r.json()["items"]


async def test_the_week_shows_exactly_the_people_of_the_api_lists(world: ConsoleWorld) -> None:
    token = await world.token("DP3A-BENGKAYANG")
    async with world.signed_in(BKY) as http:
        page = await http.get("/console/pekan")
        assert page.status_code == 200
        for view, heading in zip(WEEK_VIEWS, ("Kedatangan minggu ini", "Sudah tiba, belum ditemukan",
                                              "Belum ditemukan lebih dari 7 hari"), strict=True):
            assert heading in page.text
            api = await _api_week(http, token, view)
            assert api, f"the demo has nobody in {view}"
            assert _people(page.text, view) == [p["id"] for p in api], view
            for p in api:
                assert p["full_name"] in page.text
                assert p["nik"] is None  # the agency has no pii:read: masked as the API masks
        assert "Kabupaten Bengkayang" in page.text  # the origin's name beside its code
        assert "6107071203910002" not in page.text
        assert "Melawi" not in page.text.split("Kedatangan minggu ini", 1)[1]  # Bengkayang's own people only
    # an officer without manifests:read sees none of it
    async with world.signed_in(POLICE) as http:
        page = await http.get("/console/pekan")
        assert all(not _people(page.text, v) for v in WEEK_VIEWS) and "Kedatangan minggu ini" not in page.text


async def test_locating_a_person_in_the_page_is_the_api_rule_and_is_audited(world: ConsoleWorld) -> None:
    token = await world.token("DP3A-BENGKAYANG")
    officer = await _officer_id(world, BKY)
    async with world.signed_in(BKY) as http:
        page = await http.get("/console/pekan")
        api = await _api_week(http, token, "arrived_not_located")
        person = next(p for p in api if p["origin_subdistrict"])
        form = re.search(rf'action="/console/kedatangan/{person["manifest_id"]}/orang/{person["id"]}/hasil"(.*?)</form>',
                         page.text, re.S)
        assert form is not None
        etag = re.search(r'name="etag" value="([^"]+)"', form.group(1))
        village = re.search(r'<option value="(\d\d\.\d\d\.\d\d\.\d{4})">', form.group(1))
        assert etag is not None and village is not None
        url = f"/console/kedatangan/{person['manifest_id']}/orang/{person['id']}/hasil"
        data = {"csrf": csrf_of(page.text), "outcome": "located", "village": village.group(1),
                "seen_by": "Kepala Desa", "seen_on": clock.now().date().isoformat(), "back": "/console/pekan"}
        stale = await http.post(url, data={**data, "etag": '"999"'})
        assert stale.status_code == 303 and "err_stale" in stale.headers["location"]
        assert "sudah diubah orang lain" in (await http.get(stale.headers["location"])).text
        no_csrf = await http.post(url, data={**data, "csrf": "wrong", "etag": html.unescape(etag.group(1))})
        assert no_csrf.status_code == 403
        r = await http.post(url, data={**data, "etag": html.unescape(etag.group(1))})
        assert r.status_code == 303 and "ok_located" in r.headers["location"], r.headers
        after = await http.get(r.headers["location"])
        assert "dicatat telah ditemukan" in after.text and person["id"] not in _people(after.text, "arrived_not_located")
        one = await http.get(f"/v1/manifests/{person['manifest_id']}/persons/{person['id']}",
                             headers={"Authorization": f"Bearer {token}"})
        assert one.json()["status"] == "located" and one.json()["located_village"] == village.group(1)
        assert one.json()["seen_by"] == "Kepala Desa"
        assert person["id"] not in [p["id"] for p in await _api_week(http, token, "arrived_not_located")]
    mine = [e for e in await _entries(world, action="manifest.person_outcome") if e["resource_id"] == person["id"]]
    assert [e["outcome"] for e in mine] == ["denied", "allowed"]  # the stale form, then the record
    assert all(e["officer"] == officer and e["agency"] == "DP3A-BENGKAYANG" for e in mine)


async def test_the_register_grid_equals_the_api_counts(world: ConsoleWorld) -> None:
    token = await world.token("DP3A-KALBAR")
    async with world.signed_in(ANALYST) as http:
        for district in (None, "61.07"):
            params = {**PERIOD, **({"kabupaten": district} if district else {})}
            page = await http.get("/console/ringkasan", params=params)
            assert page.status_code == 200
            chosen = district or "61.01"  # the jurisdiction's first district by default
            api = await http.get("/v1/register/counts", params={"by": "subdistrict", "district": chosen},
                                 headers={"Authorization": f"Bearer {token}"})
            assert api.status_code == 200, api.text
            section = page.text.split('<section id="register">', 1)[1]
            assert f'<option value="{chosen}" selected>' in section
            shown: dict[str, dict[str, int | None]] = {}
            for code, row in re.findall(r'<tr data-subdistrict="([^"]*)">(.*?)</tr>', section, re.S):
                shown[code] = {c: None if v == "*" else int(v)
                               for c, v in re.findall(r'data-col="([a-z_]+)">([^<]*)</td>', row)}
            cols = ("persons", "departed", "abroad", "returned", "deported", "repeat_return")
            assert shown == {r["subdistrict"] or "": {c: r[c] for c in cols} for r in api.json()["rows"]}
        assert shown, "the demo register has nobody in Bengkayang"
        x = await http.get("/console/ringkasan/register.xlsx", params={"kabupaten": "61.07"})
        assert x.status_code == 200 and "register-pmi-per-kecamatan-61.07-" in x.headers["content-disposition"]
        sheet = load_workbook(io.BytesIO(x.content))["Register PMI"]
        rows = list(sheet.iter_rows(min_row=2))
        assert {r[0].value or "": r[2].value for r in rows} == {k: v["persons"] for k, v in shown.items()}
        assert all(r[0].data_type == "s" for r in rows if r[0].value)  # codes are text
        c = await http.get("/console/ringkasan/register.csv", params={"kabupaten": "61.07"})
        lines = c.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("Kode kecamatan;Kecamatan") and len(lines) == 1 + len(shown)


async def test_not_located_is_recorded_and_an_incomplete_form_is_explained(world: ConsoleWorld) -> None:
    token = await world.token("DP3A-BENGKAYANG")
    async with world.signed_in(BKY) as http:
        page = await http.get("/console/pekan")
        person = (await _api_week(http, token, "not_located_after_7_days"))[0]
        url = f"/console/kedatangan/{person['manifest_id']}/orang/{person['id']}/hasil"
        data = {"csrf": csrf_of(page.text), "etag": f'"{person["version"]}"', "seen_on": clock.now().date().isoformat(),
                "back": "/console/pekan"}
        bad = await http.post(url, data={**data, "outcome": "located"})  # nobody named who saw them
        assert "err_invalid" in bad.headers["location"]
        assert "siapa yang melihat" in (await http.get(bad.headers["location"])).text
        r = await http.post(url, data={**data, "outcome": "not_located", "note": "rumah kosong"})
        assert "ok_not_located" in r.headers["location"], r.headers
        one = await http.get(f"/v1/manifests/{person['manifest_id']}/persons/{person['id']}",
                             headers={"Authorization": f"Bearer {token}"})
        assert one.json()["status"] == "not_located" and one.json()["version"] == person["version"] + 1
