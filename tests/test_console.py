"""The console (issue 12): officers sign in, see figures equal to the API's, act through the same
services, and everything they read or do is in the audit chain under their own name."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pyotp
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.app import create_app
from api.core import clock
from api.core.settings import Settings
from api.core.unit import operator_unit
from api.officers import service as officers
from api.officers.schemas import OfficerCreate
from models import Agency, AgencyKind, AuditEvent, Notice, Officer
from models.regions import regions
from tests.console_world import ConsoleWorld, console_world, csrf_of, sign_in
from tests.demo_world import DemoCopy

ANALYST = "analis@dp3a.kalbarprov.go.id"  # DP3A-KALBAR, province 61: stats:read notices:read
BKY = "petugas@dp3a.bengkayangkab.go.id"  # DP3A-BENGKAYANG, 61.07
SAMBAS = "petugas@dp3a.sambas.go.id"  # DP3A-SAMBAS, 61.01
POLICE = "ppa@polres-bengkayang.polri.go.id"
AUDITOR = "auditor@inspektorat.kalbarprov.go.id"
PERIOD = {"dari": "2025-01", "sampai": "2025-06"}


@pytest.fixture(scope="module")
async def world(module_demo: DemoCopy) -> AsyncIterator[ConsoleWorld]:
    # every test signs in from one address, more than 20 times a minute: the sign-in rate limit
    # is tested on apps of their own (tests/test_officers_cli.py, tests/test_console_officers.py)
    async for w in console_world(module_demo, signin_lockout_after=3, rate_signin=10_000):
        yield w


async def _entries(w: ConsoleWorld, **where: str) -> list[dict]:
    db = w.app.state.services.db
    async with db.read() as conn:
        stmt = sa.select(AuditEvent.body).order_by(AuditEvent.seq)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEvent, k) == v)
        return [orjson.loads(b) for b in (await conn.execute(stmt)).scalars()]


async def _officer_id(w: ConsoleWorld, email: str) -> str:
    async with w.app.state.services.db.read() as conn:
        return str((await conn.execute(sa.select(Officer.id).where(Officer.email == email))).scalar_one())


def _grid(page: str) -> dict[tuple[str, str], int | None]:
    """The overview table's cells: (district, month) -> count (None: suppressed)."""
    cells = {}
    for district, row in re.findall(r'<tr data-district="([^"]+)">(.*?)</tr>', page, re.S):
        for month, value in re.findall(r'data-month="([^"]+)">([^<]*)</td>', row):
            cells[(district, month)] = None if value == "*" else int(value)
    return cells


async def test_the_root_sends_a_person_to_sign_in(world: ConsoleWorld) -> None:
    async with world.browser() as http:
        r = await http.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/console/masuk"
        page = await http.get("/console/masuk")
        assert "Masuk" in page.text and 'lang="id"' in page.text
        assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text
        en = await http.get("/console/masuk?lang=en")
        assert "Sign in" in en.text and en.cookies.get("sinergi_lang") == "en"
        r = await http.get("/console/ringkasan")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/masuk?next=")


async def test_the_session_cookie_is_httponly_samesite_and_only_its_hash_is_stored(world: ConsoleWorld) -> None:
    async with world.browser() as http:
        r = await sign_in(http, ANALYST, world.password(ANALYST))
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # development mode; any other mode sets it
        token = http.cookies["sinergi_session"]
        async with world.app.state.services.db.read() as conn:
            stored = (await conn.execute(sa.text("SELECT id_hash FROM officer_session"))).scalars().all()
        assert officers.token_hash(token) in stored and token not in stored
        assert (await http.get("/")).headers["location"] == "/console"


async def test_the_overview_equals_the_api_and_the_downloads_equal_the_overview(world: ConsoleWorld) -> None:
    async with world.signed_in(ANALYST) as http:
        page = await http.get("/console/ringkasan", params=PERIOD)
        assert page.status_code == 200, page.text
        shown = _grid(page.text)
        token = await world.token("DP3A-KALBAR")
        api = await http.get("/v1/stats/returnees", headers={"Authorization": f"Bearer {token}"},
                             params={"group_by": "district,month", "from": "2025-01-01", "to": "2025-06-30"})
        assert api.status_code == 200
        expected = {(r["district"], r["month"]): r["count"] for r in api.json()["rows"]}
        months = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
        districts = sorted({d for d, _ in shown})
        assert len(districts) == 14 and "61.10" in districts  # every district of the province, Melawi too
        assert set(shown) == {(d, m) for d in districts for m in months}  # zero cells present
        for key, value in shown.items():
            assert value == expected.get(key, 0), key
        assert "Kabupaten Bengkayang" in page.text and "<svg" in page.text
        # the suspected victims' column is the API's ?group_by=district&trafficking_status=possible
        sus = await http.get("/v1/stats/returnees", headers={"Authorization": f"Bearer {token}"},
                             params={"group_by": "district", "trafficking_status": "possible",
                                     "from": "2025-01-01", "to": "2025-06-30"})
        bky_row = re.search(r'<tr data-district="61.07">.*?class="num suspected">([^<]*)<', page.text, re.S)
        api_bky = next((r["count"] for r in sus.json()["rows"] if r["district"] == "61.07"), 0)
        assert bky_row is not None and bky_row.group(1) == ("*" if api_bky is None else str(api_bky))

        x = await http.get("/console/ringkasan/unduh.xlsx", params=PERIOD)
        assert x.status_code == 200
        assert 'filename="pemulangan-per-kabupaten-2025-01_2025-06.xlsx"' in x.headers["content-disposition"]
        sheet = load_workbook(io.BytesIO(x.content))["Pemulangan"]
        rows = list(sheet.iter_rows(values_only=False))
        assert [c.value for c in rows[0]][:4] == ["Kode kabupaten/kota", "Kabupaten/Kota", "Bulan", "Jumlah pemulangan"]
        book: dict[tuple[str, str], int | None] = {}
        for row in rows[1:]:
            assert row[0].data_type == "s" and row[2].data_type == "s"  # codes and months are text
            book[(row[0].value, row[2].value)] = row[3].value
            if row[3].value is None:
                assert row[4].value.startswith("disamarkan")
        assert book == shown
        melawi = next(r for r in rows[1:] if r[0].value == "61.10")
        assert melawi[0].value == "61.10" and melawi[1].value == "Kabupaten Melawi"

        c = await http.get("/console/ringkasan/unduh.csv", params=PERIOD)
        assert c.content.startswith("\ufeff".encode())
        lines = c.content.decode("utf-8-sig").splitlines()
        assert lines[0].split(";")[:3] == ["Kode kabupaten/kota", "Kabupaten/Kota", "Bulan"]
        assert any(line.startswith('"=""61.10""";Kabupaten Melawi') for line in lines), lines[:3]
        assert len(lines) == 1 + len(shown)


async def test_an_officer_sees_nothing_outside_the_jurisdiction(world: ConsoleWorld) -> None:
    async with world.signed_in(SAMBAS) as http:
        week = await http.get("/console/pekan")
        assert week.status_code == 200
        async with world.app.state.services.db.read() as conn:
            bky = (await conn.execute(sa.select(Notice.id, Notice.version).where(
                Notice.district == "61.07", Notice.acknowledged_at.is_(None)).limit(1))).first()
        assert bky is not None and str(bky[0]) not in week.text
        r = await http.post(f"/console/pemberitahuan/{bky[0]}/konfirmasi",
                            data={"csrf": csrf_of(week.text), "etag": f'"{bky[1]}"', "back": "/console/pekan"})
        assert r.status_code == 303 and "err_not_found" in r.headers["location"]
        again = await http.get(r.headers["location"])
        assert "di luar wilayah" in again.text
        # a page the agency's scopes do not reach
        assert (await http.get("/console/ringkasan")).status_code == 403
        assert (await http.get("/console/audit")).status_code == 403
    async with world.app.state.services.db.read() as conn:
        acked = (await conn.execute(sa.select(Notice.acknowledged_at).where(Notice.id == bky[0]))).scalar_one()
    assert acked is None


async def test_acknowledging_in_the_page_is_the_api_rule_and_is_audited_under_the_officer(world: ConsoleWorld) -> None:
    officer = await _officer_id(world, BKY)
    async with world.signed_in(BKY) as http:
        week = await http.get("/console/pekan")
        ids = re.findall(r'/console/pemberitahuan/([0-9a-f-]{36})/konfirmasi', week.text)
        assert ids, "no notice to acknowledge in the demo"
        notice = ids[0]
        etag = re.search(rf'/console/pemberitahuan/{notice}/konfirmasi".*?name="etag" value="([^"]+)"', week.text, re.S)
        assert etag is not None
        # a stale form: the ETag it carried is no longer the notice's
        stale = await http.post(f"/console/pemberitahuan/{notice}/konfirmasi",
                                data={"csrf": csrf_of(week.text), "etag": '"999"', "back": "/console/pekan"})
        assert "err_stale" in stale.headers["location"]
        assert "sudah diubah orang lain" in (await http.get(stale.headers["location"])).text
        r = await http.post(f"/console/pemberitahuan/{notice}/konfirmasi",
                            data={"csrf": csrf_of(week.text), "etag": html.unescape(etag.group(1)),
                                  "back": "/console/pekan"})
        assert r.status_code == 303 and "ok_acknowledged" in r.headers["location"], r.headers
        after = await http.get(r.headers["location"])
        assert f"/console/pemberitahuan/{notice}/konfirmasi" not in after.text
    entries = await _entries(world, action="notice.acknowledge")
    mine = [e for e in entries if e["resource_id"] == notice and e["agency"] == "DP3A-BENGKAYANG"]
    assert [e["outcome"] for e in mine] == ["denied", "allowed"]  # the stale form, then the acknowledgement
    for e in mine:
        assert e["officer"] == officer and e["client_id"] == f"officer-{officer}"
    reads = await _entries(world, action="notice.list", client_id=f"officer-{officer}")
    assert reads and all(e["officer"] == officer for e in reads)  # reads too


async def test_a_referral_is_moved_in_the_page_by_the_police(world: ConsoleWorld) -> None:
    async with world.signed_in(POLICE) as http:
        page = await http.get("/console/rujukan")
        assert page.status_code == 200
        forms = re.findall(r'/console/rujukan/([0-9a-f-]{36})/status".*?name="etag" value="([^"]+)".*?'
                           r'<option value="([a-z-]+)"', page.text, re.S)
        assert forms
        ref, etag, action = forms[0]
        r = await http.post(f"/console/rujukan/{ref}/status", data={
            "csrf": csrf_of(page.text), "etag": html.unescape(etag), "action": action,
            "note": "dicek di konsol", "back": "/console/rujukan"})
        assert "ok_moved" in r.headers["location"], r.headers
    moved = [e for e in await _entries(world, action=f"referral.{action}") if e["resource_id"] == ref]
    assert moved and moved[-1]["officer"] == await _officer_id(world, POLICE)


async def test_csrf_missing_or_wrong_is_refused(world: ConsoleWorld) -> None:
    async with world.signed_in(BKY) as http:
        notice = str(uuid.uuid4())
        for data in ({}, {"csrf": "wrong"}):
            r = await http.post(f"/console/pemberitahuan/{notice}/konfirmasi", data=data)
            assert r.status_code == 403 and "Formulir" in r.text
        r = await http.post("/console/keluar", data={"csrf": "wrong"})
        assert r.status_code == 403
        assert (await http.get("/console")).status_code == 200  # still signed in
    async with world.browser() as other:  # the sign-in form's own token
        r = await sign_in(other, BKY, world.password(BKY), csrf="forged")
        assert r.status_code == 303 and "error=csrf" in r.headers["location"]
        assert "sinergi_session" not in other.cookies


async def test_sessions_expire_idle_and_absolute_and_sign_out_ends_one(world: ConsoleWorld) -> None:
    settings = world.app.state.services.settings
    async with world.signed_in(ANALYST) as http:
        start = clock.now()
        with clock.frozen(start + timedelta(seconds=settings.session_idle + 5)):
            r = await http.get("/console")
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
    async with world.signed_in(ANALYST) as http:
        t = clock.now()
        step = timedelta(seconds=settings.session_idle - 60)
        n = settings.session_absolute // (settings.session_idle - 60) + 1
        for i in range(1, n + 1):  # used often enough never to idle out: the absolute limit still ends it
            with clock.frozen(t + step * i):
                r = await http.get("/console")
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
    async with world.signed_in(ANALYST) as http:
        home = await http.get("/console")
        r = await http.post("/console/keluar", data={"csrf": csrf_of(home.text)})
        assert r.status_code == 303 and r.headers["location"] == "/console/masuk"
        http.cookies.set("sinergi_session", "", domain="testserver.local")
        assert (await http.get("/console")).status_code == 303


async def test_repeated_failures_lock_the_officer(world: ConsoleWorld) -> None:
    async with operator_unit(world.app.state.services.db, "test") as session:
        await officers.create_officer(session, "DP3A-SAMBAS", OfficerCreate(
            email="kunci@dp3a.sambas.go.id", scopes=["notices:read"], password="benar-sekali-123"))
    async with world.browser() as http:
        for _ in range(3):
            r = await sign_in(http, "kunci@dp3a.sambas.go.id", "salah-salah-salah")
            assert "error=credentials" in r.headers["location"]
        r = await sign_in(http, "kunci@dp3a.sambas.go.id", "benar-sekali-123")
        assert "error=locked" in r.headers["location"]  # the right password, but locked
    denied = [e for e in await _entries(world, action="officer.signin") if e["outcome"] == "denied"]
    assert any(e["detail"].get("reason") == "locked" for e in denied)


async def test_the_second_factor_is_required_where_the_agency_says_so(world: ConsoleWorld) -> None:
    db = world.app.state.services.db
    async with operator_unit(db, "test") as session:  # an agency of its own: the others keep their officers
        await agencies.create_agency(session, AgencyCreate(code="DP3A-SANGGAU", name="DP3A Kabupaten Sanggau",
                                                           kind=AgencyKind.women_child_protection, jurisdiction="61.03"))
        await agencies.create_client(session, "DP3A-SANGGAU", ClientCreate(scopes=["stats:read"]))
        agency = await session.get(Agency, "DP3A-SANGGAU")
        assert agency is not None
        agency.requires_totp = True
        session.add(agency)
        created = await officers.create_officer(session, "DP3A-SANGGAU", OfficerCreate(
            email="kepala@dp3a.sanggau.go.id", scopes=["stats:read"], password="kata-sandi-panjang"))
    assert created.totp_uri is not None
    secret = pyotp.parse_uri(created.totp_uri).secret
    async with world.browser() as http:
        r = await sign_in(http, created.email, "kata-sandi-panjang")
        assert "error=second-factor" in r.headers["location"]
        r = await sign_in(http, created.email, "kata-sandi-panjang", code="000000")
        assert "error=second-factor" in r.headers["location"] or pyotp.TOTP(secret).now() == "000000"
    now = clock.now()
    with clock.frozen(now):
        code = pyotp.TOTP(secret).at(now)
        async with world.signed_in(created.email, "kata-sandi-panjang", code):
            pass
        # a code is accepted once (RFC 6238, 5.2): the same one again, within its 30 seconds, is refused
        async with world.browser() as http:
            r = await sign_in(http, created.email, "kata-sandi-panjang", code=code)
            assert "error=second-factor" in r.headers["location"]
    with clock.frozen(now + timedelta(seconds=30)):  # the next step's code opens it
        async with world.signed_in(created.email, "kata-sandi-panjang", pyotp.TOTP(secret).at(now + timedelta(seconds=30))):
            pass
    async with db.read() as conn:
        stored = (await conn.execute(sa.select(Officer.totp_secret_enc).where(Officer.email == created.email))).scalar_one()
    assert secret not in stored  # encrypted at rest


async def test_officers_hold_a_subset_of_the_agency_scopes_and_are_made_by_the_operator(world: ConsoleWorld) -> None:
    creds = world.demo["clients"]["SINERGI-OPERATOR"]
    async with world.browser() as http:
        token = (await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(creds["client_id"], creds["client_secret"]))).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        r = await http.post("/v1/agencies/DP3A-SAMBAS/officers", headers=auth,
                            json={"email": "baru@dp3a.sambas.go.id", "scopes": ["notices:read", "notices:ack"]})
        assert r.status_code == 201, r.text
        assert r.json()["password"] and r.json()["totp_uri"] is None
        r = await http.post("/v1/agencies/DP3A-SAMBAS/officers", headers=auth,
                            json={"email": "lebih@dp3a.sambas.go.id", "scopes": ["pii:read"]})
        assert r.status_code == 422 and r.json()["type"].endswith("scopes-not-held")
        other = await world.token("DP3A-SAMBAS")
        r = await http.post("/v1/agencies/DP3A-SAMBAS/officers", headers={"Authorization": f"Bearer {other}"},
                            json={"email": "x@dp3a.sambas.go.id", "scopes": ["notices:read"]})
        assert r.status_code == 403  # the agency's machine client does not hold officers:manage
        async with operator_unit(world.app.state.services.db, "test") as session:
            admin = await agencies.create_client(session, "DP3A-SAMBAS",
                                                 ClientCreate(scopes=["officers:manage", "notices:read"]))
        own = (await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(admin.client_id, admin.client_secret))).json()["access_token"]
        r = await http.post("/v1/agencies/DP3A-SAMBAS/officers", headers={"Authorization": f"Bearer {own}"},
                            json={"email": "kedua@dp3a.sambas.go.id", "scopes": ["notices:read"]})
        assert r.status_code == 201, r.text  # the agency's administrator, for its own people
        # ... granting only what it holds itself: an officer with notices:ack (which the
        # administrator's client does not hold) would be a way to act beyond its own scopes
        r = await http.post("/v1/agencies/DP3A-SAMBAS/officers", headers={"Authorization": f"Bearer {own}"},
                            json={"email": "ketiga@dp3a.sambas.go.id", "scopes": ["notices:read", "notices:ack"]})
        assert r.status_code == 403 and r.json()["type"] == "/problems/scopes-not-yours", r.text
        assert r.json()["errors"] == [{"field": "scopes", "message": "not held by you: notices:ack"}]
        r = await http.post("/v1/agencies/DP3A-BENGKAYANG/officers", headers={"Authorization": f"Bearer {own}"},
                            json={"email": "y@dp3a.bengkayangkab.go.id", "scopes": ["notices:read"]})
        assert r.status_code == 404  # another agency's: as if it did not exist


async def test_a_partner_may_name_the_person_behind_a_call_bounded_and_claimed(world: ConsoleWorld) -> None:
    token = await world.token("DP3A-KALBAR")
    async with world.browser() as http:
        r = await http.get("/v1/stats/returnees", params={"group_by": "district"},
                           headers={"Authorization": f"Bearer {token}", "Sinergi-User-Id": "NIP-19800101\x01" + "x" * 500})
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
    (entry,) = await _entries(world, request_id=rid)
    assert entry["on_behalf_of"].startswith("NIP-19800101\\u0001x") and len(entry["on_behalf_of"]) < 200
    assert "officer" not in entry  # claimed, not an officer the service knows


async def test_the_auditor_searches_verifies_and_downloads_a_checkpoint(world: ConsoleWorld) -> None:
    async with world.signed_in(AUDITOR) as http:
        officer = await _officer_id(world, BKY)
        page = await http.get("/console/audit", params={"actor": f"officer-{officer}"})
        assert page.status_code == 200 and officer in page.text
        cp = await http.get("/console/audit/titik-periksa")
        assert cp.status_code == 200 and "titik-periksa-audit-61-" in cp.headers["content-disposition"]
        signed = cp.json()["checkpoint"]
        v = await http.get("/console/audit", params={"verify": "1", "checkpoint": signed})
        assert 'id="verify-result"' in v.text and "Rantai utuh" in v.text


async def test_the_task_force_sees_its_district_and_the_api_referral_figures(world: ConsoleWorld) -> None:
    """An oversight agency of one district: the overview has its district only, and the referral
    table is /v1/stats/referrals?group_by=to_agency,status for the same period, cell for cell."""
    async with world.signed_in("sekretariat@gugustppo.bengkayangkab.go.id") as http:
        page = await http.get("/console/ringkasan", params={"dari": "2026-01", "sampai": "2026-12"})
        assert page.status_code == 200
        assert {d for d, _ in _grid(page.text)} == {"61.07"}
        shown = {(a, s): (None if c == "*" else int(c), None if o == "*" else int(o)) for a, s, c, o in re.findall(
            r'<tr data-agency="([^"]+)" data-status="([^"]+)">.*?<td class="num">([^<]*)</td>\s*'
            r'<td class="num">([^<]*)</td>', page.text, re.S)}
        token = await world.token("GUGUS-TPPO-BENGKAYANG")
        api = await http.get("/v1/stats/referrals", headers={"Authorization": f"Bearer {token}"},
                             params={"group_by": "to_agency,status", "from": "2026-01-01", "to": "2026-12-31"})
        expected = {(r["to_agency"], r["status"]): (r["count"], r["overdue"]) for r in api.json()["rows"]}
        assert expected and shown == expected


def _district_referrals(page: str) -> dict[str, tuple[int | None, int | None]]:
    """The overview's referrals by district: district code ('' when not known) -> (open, overdue)."""
    def value(text: str) -> int | None:
        return None if text == "*" else int(text)

    return {d: (value(n), value(late)) for d, n, late in re.findall(
        r'<tr data-referral-district="([^"]*)">.*?<td class="num open">([^<]*)</td>\s*'
        r'<td class="num overdue">([^<]*)</td>', page, re.S)}


async def _api_referrals_by_district(http: httpx.AsyncClient, token: str) -> tuple[
        dict[str, tuple[int | None, int | None]], int | None, int | None]:
    auth = {"Authorization": f"Bearer {token}"}
    r = await http.get("/v1/stats/referrals", headers=auth, params={"group_by": "district", "open": "true"})
    assert r.status_code == 200, r.text
    whole = await http.get("/v1/stats/referrals", headers=auth, params={"open": "true"})
    rows = whole.json()["rows"]
    return ({row["district"] or "": (row["count"], row["overdue"]) for row in r.json()["rows"]}, r.json()["total"],
            rows[0]["overdue"] if rows else 0)


async def test_the_overview_referrals_by_district_equal_the_api(world: ConsoleWorld) -> None:
    """Referrals open now and overdue per district on the province's overview are
    /v1/stats/referrals?group_by=district&open=true, cell for cell (every district of the province
    present, 0 where the API has no row), whatever period the page shows (the demo's referrals
    were made in the last weeks, its returnees in 2025), and so are its downloads."""
    period = PERIOD
    token = await world.token("DP3A-KALBAR")
    async with world.signed_in(ANALYST) as http:
        with clock.frozen(clock.now()):  # "overdue" is now: the page and the API at the same instant
            page = await http.get("/console/ringkasan", params=period)
            expected, total, total_overdue = await _api_referrals_by_district(http, token)
        assert page.status_code == 200, page.text
        shown = _district_referrals(page.text)
        assert any(n for n, _ in expected.values()), "the demo has open referrals in the period"
        province = [c for c, r in regions().items() if r.level == "district" and c.startswith("61.")]
        assert set(province) <= set(shown) and set(shown) == set(province) | set(expected)
        for district, cells in shown.items():
            assert cells == expected.get(district, (0, 0)), district
        foot = re.search(r'id="referrals-by-district".*?<tfoot>.*?<td class="num open">([^<]*)</td>\s*'
                         r'<td class="num overdue">([^<]*)</td>', page.text, re.S)
        assert foot is not None and foot.groups() == (str(total), str(total_overdue))
        assert "Rujukan per kabupaten/kota" in page.text and "Kabupaten Bengkayang" in page.text

        made = clock.now()
        with clock.frozen(made):
            c = await http.get("/console/ringkasan/rujukan.csv", params=period)
            x = await http.get("/console/ringkasan/rujukan.xlsx", params=period)
            overview_book = await http.get("/console/ringkasan/unduh.xlsx", params=period)
            expected, _, _ = await _api_referrals_by_district(http, token)
        assert c.status_code == 200 and c.content.startswith("\ufeff".encode())
        assert f'filename="rujukan-terbuka-per-kabupaten-{made:%Y-%m-%d}.csv"' in c.headers["content-disposition"]
        lines = c.content.decode("utf-8-sig").splitlines()
        assert lines[0].split(";") == ["Kode kabupaten/kota", "Kabupaten/Kota", "Rujukan terbuka", "Lewat tenggat",
                                       "Keterangan"]
        from_csv = {}
        for line in lines[1:]:
            code, name, n, late, note = line.split(";")
            code = code.removeprefix('"=""').removesuffix('"""')  # ="61.07", quoted by the CSV writer
            from_csv[code] = (int(n) if n else None, int(late) if late else None)
            assert (n == "") <= note.startswith("disamarkan") and bool(name)
        assert any(line.startswith('"=""61.10""";Kabupaten Melawi') for line in lines)
        assert from_csv == {d: expected.get(d, (0, 0)) for d in from_csv} and set(from_csv) == set(shown)
        for book in (x, overview_book):
            assert book.status_code == 200
            sheet = load_workbook(io.BytesIO(book.content))["Rujukan"]
            rows = list(sheet.iter_rows(values_only=False))
            assert [cell.value for cell in rows[0]] == lines[0].split(";")
            cells = {}
            for row in rows[1:]:
                assert row[0].data_type == "s"  # codes are text
                cells[row[0].value or ""] = (row[2].value, row[3].value)
            assert cells == from_csv
        assert 'filename="rujukan-terbuka-per-kabupaten-' in x.headers["content-disposition"]
        assert "Pemulangan" in load_workbook(io.BytesIO(overview_book.content)).sheetnames
    downloads = [e["detail"] for e in await _entries(world, action="console.download")]
    assert any(d.get("table") == "referrals_by_district" and d["format"] == "csv" and d["as_of"] == made.isoformat()
               for d in downloads)


async def test_a_district_officer_sees_the_referrals_by_district_of_its_own_figures(world: ConsoleWorld) -> None:
    """The task force of one district: its district, and only the rows its own API reply has."""
    token = await world.token("GUGUS-TPPO-BENGKAYANG")
    async with world.signed_in("sekretariat@gugustppo.bengkayangkab.go.id") as http:
        with clock.frozen(clock.now()):
            page = await http.get("/console/ringkasan")
            expected, _, _ = await _api_referrals_by_district(http, token)
        shown = _district_referrals(page.text)
    assert "61.07" in shown and set(shown) == {"61.07"} | set(expected)
    assert shown == {d: expected.get(d, (0, 0)) for d in shown}


async def test_outside_development_the_cookies_are_secure(database_url: str) -> None:
    def key() -> str:
        return base64.urlsafe_b64encode(os.urandom(32)).decode()

    settings = Settings(database_url=database_url, mode="production", data_key=key(), index_key=key(), db_pool_size=5)
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://sinergi.test") as http:
            r = await http.get("/console/masuk?lang=en")
    cookies = r.headers.get_list("set-cookie")
    assert cookies and all("Secure" in c and "HttpOnly" in c for c in cookies), cookies
    assert "SameSite=strict" in next(c for c in cookies if c.startswith("sinergi_signin="))

