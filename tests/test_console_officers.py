"""The console's officer pages: "Petugas" for an agency's managers (``officers:manage``: list,
add, disable and enable, reset a password or a second factor, through the services of
``/v1/agencies/{code}/officers``), the steps of a sign-in after the password (a new password
after a reset; a second factor to enrol where the agency requires one and the officer has
none, its secret as text and as a QR code drawn on the server), and "Keamanan akun" (the
officer's own password and second factor). Every form carries the CSRF token, every check of a
password or a code is rate limited as sign-in is, and everything is audited under the officer."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pyotp
import pytest
import sqlalchemy as sa

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.app import create_app
from api.core.settings import Settings
from api.core.unit import operator_unit
from api.officers import service as officers
from api.officers.schemas import OfficerCreate
from models import Agency, AgencyKind, AuditEvent, Officer, OfficerSession
from tests.console_world import ConsoleWorld, console_world, csrf_of, later_code, sign_in
from tests.demo_world import DemoCopy

ADMIN = "admin@dp3a.bengkayangkab.go.id"  # DP3A-BENGKAYANG's demo manager (officers:manage)
BKY = "petugas@dp3a.bengkayangkab.go.id"  # DP3A-BENGKAYANG, no officers:manage
SAMBAS = "petugas@dp3a.sambas.go.id"
PASSWORD = "kata-sandi-panjang-1"
SECRET = re.compile(r'<code id="totp-secret" class="secret">([A-Z2-7 ]+)</code>')
ONE_TIME = re.compile(r'<code id="one-time-password" class="secret">([^<]+)</code>')


@pytest.fixture(scope="module")
async def world(module_demo: DemoCopy) -> AsyncIterator[ConsoleWorld]:
    # many sign-ins from one address in a minute: the limit itself is tested on an app of its own
    async for w in console_world(module_demo, rate_signin=10_000, signin_lockout_after=3):
        yield w


async def _entries(w: ConsoleWorld, **where: str) -> list[dict[str, Any]]:
    async with w.app.state.services.db.read() as conn:
        stmt = sa.select(AuditEvent.body).order_by(AuditEvent.seq)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEvent, k) == v)
        return [orjson.loads(b) for b in (await conn.execute(stmt)).scalars()]


async def _officer(w: ConsoleWorld, email: str) -> Officer:
    async with w.app.state.services.db.read() as conn:
        row = (await conn.execute(sa.select(Officer).where(Officer.email == email))).mappings().one()
    return Officer.model_validate(dict(row))


async def _officer_id(w: ConsoleWorld, email: str) -> str:
    async with w.app.state.services.db.read() as conn:
        return str((await conn.execute(sa.select(Officer.id).where(Officer.email == email))).scalar_one())


async def _agency_requiring_totp(w: ConsoleWorld, code: str, jurisdiction: str, emails: list[str]) -> None:
    """An agency of its own (the demo's keep their officers) whose officers were made while it
    required no second factor; then it starts requiring one."""
    async with operator_unit(w.app.state.services.db, "test") as session:
        await agencies.create_agency(session, AgencyCreate(code=code, name=f"DP3A {code}", jurisdiction=jurisdiction,
                                                           kind=AgencyKind.women_child_protection))
        await agencies.create_client(session, code, ClientCreate(scopes=["stats:read", "officers:manage"]))
        for email in emails:
            await officers.create_officer(session, code, OfficerCreate(email=email, scopes=["stats:read"],
                                                                       password=PASSWORD))
    async with operator_unit(w.app.state.services.db, "test") as session:
        agency = await session.get(Agency, code)
        assert agency is not None
        agency.requires_totp = True
        session.add(agency)


def _rows(page: str) -> dict[str, str]:
    """The officers' table: e-mail -> the row's HTML."""
    return dict(re.findall(r'<tr data-officer="[^"]+" data-email="([^"]+)">(.*?)</tr>', page, re.S))


async def test_the_officers_page_is_the_managers_and_lists_the_api_list(world: ConsoleWorld) -> None:
    async with world.signed_in(ADMIN) as http:
        home = await http.get("/console")
        assert 'href="/console/petugas"' in home.text and 'href="/console/keamanan"' in home.text
        page = await http.get("/console/petugas")
        assert page.status_code == 200 and "Petugas DP3A Kabupaten Bengkayang" in page.text
        shown = _rows(page.text)
        token = await world.token("DP3A-BENGKAYANG")  # the demo's machine client holds officers:manage too
        api = await http.get("/v1/agencies/DP3A-BENGKAYANG/officers", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200, api.text
        assert sorted(shown) == [o["email"] for o in api.json()["items"]]
        assert {ADMIN, BKY} <= set(shown) and SAMBAS not in page.text
        assert "(Anda)" in shown[ADMIN] and "/status" not in shown[ADMIN]  # no disabling oneself from here
        assert "/status" in shown[BKY]
        # only the agency's scopes are offered; admin never
        offered = set(re.findall(r'name="scopes" value="([^"]+)"', page.text))
        assert offered == set(world.demo["clients"]["DP3A-BENGKAYANG"]["scopes"].split())
        en = await http.get("/console/petugas?lang=en")
        assert "Officers of" in en.text and "Add an officer" in en.text
    async with world.signed_in(BKY) as http:  # without officers:manage: no link, no page, no action
        home = await http.get("/console?lang=id")
        assert 'href="/console/petugas"' not in home.text and 'href="/console/keamanan"' in home.text
        assert (await http.get("/console/petugas")).status_code == 403
        r = await http.post("/console/petugas", data={"csrf": csrf_of(home.text), "email": "x@dp3a.bengkayangkab.go.id",
                                                     "scopes": "notices:read"})
        assert r.status_code == 403
    async with world.browser() as http:
        assert (await http.get("/console/petugas")).headers["location"].startswith("/console/masuk")


async def test_a_manager_adds_an_officer_who_chooses_a_password_at_the_first_sign_in(world: ConsoleWorld) -> None:
    email = "baru@dp3a.bengkayangkab.go.id"
    async with world.signed_in(ADMIN) as http:
        csrf = csrf_of((await http.get("/console/petugas")).text)
        for data, msg in (({"email": email, "name": "Baru", "scopes": ["notices:read", "pii:read"]}, "err_scopes_not_held"),
                          ({"email": BKY, "scopes": ["notices:read"]}, "err_officer_exists"),
                          ({"email": "bukan surel", "scopes": ["notices:read"]}, "err_officer_invalid"),
                          ({"email": email, "scopes": []}, "err_officer_invalid")):
            r = await http.post("/console/petugas", data={"csrf": csrf, **data})
            assert r.status_code == 303 and f"msg={msg}" in r.headers["location"], (data, r.headers)
        assert email not in (await http.get("/console/petugas")).text  # refused: nothing was made
        r = await http.post("/console/petugas", data={"csrf": "salah", "email": email, "scopes": ["notices:read"]})
        assert r.status_code == 403 and "Formulir" in r.text
        r = await http.post("/console/petugas", data={"csrf": csrf, "email": email, "name": "Petugas Baru",
                                                     "scopes": ["notices:read", "notices:ack"]})
        assert r.status_code == 200 and "hanya ditampilkan sekali" in r.text
        assert r.headers["cache-control"] == "no-store"
        m = ONE_TIME.search(r.text)
        assert m is not None
        one_time = html.unescape(m.group(1))
        listed = _rows((await http.get("/console/petugas")).text)
        assert "notices:read, notices:ack" in listed[email] and "kata sandi sementara" in listed[email]
        assert one_time not in (await http.get("/console/petugas")).text  # shown once
    stored = await _officer(world, email)
    assert officers.password_matches(stored.password_hash, one_time) and one_time not in stored.password_hash
    made = [e for e in await _entries(world, action="officer.create") if e["resource_id"] == str(stored.id)]
    assert made and made[-1]["officer"] == await _officer_id(world, ADMIN) and made[-1]["agency"] == "DP3A-BENGKAYANG"
    async with world.browser() as http:  # the new officer: the one-time password leads to choosing their own
        r = await sign_in(http, email, one_time)
        assert r.headers["location"] == "/console/masuk/sandi-baru?next=%2Fconsole"
        page = await http.get(r.headers["location"])
        r = await http.post("/console/masuk/sandi-baru", data={"csrf": csrf_of(page.text), "next": "/console",
                                                               "new_password": PASSWORD, "confirm": PASSWORD + "x"})
        assert "error=password-invalid" in r.headers["location"]
        r = await http.post("/console/masuk/sandi-baru", data={"csrf": csrf_of(page.text), "next": "/console",
                                                               "new_password": PASSWORD, "confirm": PASSWORD})
        assert r.headers["location"] == "/console"
        assert (await http.get("/console/pekan")).status_code == 200  # notices:read: the week opens


async def test_disable_enable_and_resets_in_the_page_end_the_sessions(world: ConsoleWorld) -> None:
    email = "kedua@dp3a.bengkayangkab.go.id"
    async with operator_unit(world.app.state.services.db, "test") as session:
        made = await officers.create_officer(session, "DP3A-BENGKAYANG", OfficerCreate(
            email=email, scopes=["notices:read"], password=PASSWORD))
    oid = str(made.id)
    async with world.signed_in(email, PASSWORD) as theirs, world.signed_in(ADMIN) as http:
        csrf = csrf_of((await http.get("/console/petugas")).text)
        r = await http.post(f"/console/petugas/{oid}/status", data={"csrf": csrf, "disabled": "1"})
        assert "msg=ok_officer_disabled" in r.headers["location"]
        assert "dinonaktifkan" in _rows((await http.get("/console/petugas")).text)[email]
        assert (await theirs.get("/console")).status_code == 303  # their session ended at once
        async with world.browser() as other:
            assert "error=credentials" in (await sign_in(other, email, PASSWORD)).headers["location"]
        r = await http.post(f"/console/petugas/{oid}/status", data={"csrf": csrf, "disabled": "0"})
        assert "msg=ok_officer_enabled" in r.headers["location"]
        r = await http.post(f"/console/petugas/{oid}/sandi", data={"csrf": csrf})
        m = ONE_TIME.search(r.text)
        assert r.status_code == 200 and m is not None
        async with world.browser() as other:
            assert "error=credentials" in (await sign_in(other, email, PASSWORD)).headers["location"]
            assert "sandi-baru" in (await sign_in(other, email, html.unescape(m.group(1)))).headers["location"]
        r = await http.post(f"/console/petugas/{oid}/totp", data={"csrf": csrf, "mode": "new"})
        assert r.status_code == 200 and '<svg' in r.text and 'class="qr"' in r.text
        secret = SECRET.search(r.text)
        assert secret is not None and "otpauth://totp/" in r.text
        assert "terdaftar" in _rows((await http.get("/console/petugas")).text)[email]
        r = await http.post(f"/console/petugas/{oid}/totp", data={"csrf": csrf, "mode": "at_sign_in"})
        assert "msg=ok_totp_at_signin" in r.headers["location"]
        # oneself: not from the page (no button), and not by posting the form either
        me = await _officer_id(world, ADMIN)
        r = await http.post(f"/console/petugas/{me}/status", data={"csrf": csrf, "disabled": "1"})
        assert "msg=err_own_account" in r.headers["location"]
        assert (await http.get("/console")).status_code == 200
        # another agency's officer is not found, as in the API
        sambas = await _officer_id(world, SAMBAS)
        for action, data in (("status", {"disabled": "1"}), ("sandi", {}), ("totp", {"mode": "new"})):
            r = await http.post(f"/console/petugas/{sambas}/{action}", data={"csrf": csrf, **data})
            assert "msg=err_not_found" in r.headers["location"], (action, r.status_code)
    assert (await _officer(world, SAMBAS)).disabled_at is None
    actions = [(e["action"], e["outcome"]) for e in await _entries(world, resource_id=oid) if e.get("officer") == me]
    assert [a for a in actions if a[0] != "officer.read"] == [
        ("officer.disable", "allowed"), ("officer.enable", "allowed"), ("officer.password_reset", "allowed"),
        ("officer.totp_reset", "allowed"), ("officer.totp_reset", "allowed")]
    refused = [e for e in await _entries(world, resource_id=sambas) if e.get("officer") == me]
    assert len(refused) == 3 and all(e["outcome"] == "denied" for e in refused)


async def test_an_existing_officer_enrols_the_second_factor_at_sign_in(world: ConsoleWorld) -> None:
    """The agency switched TOTP on after making its officers: at the next sign-in, after the right
    password, the officer enrols a secret shown as text and as a QR code, and only a valid code
    of it makes a session."""
    email = "lama@dp3a.ketapang.go.id"
    await _agency_requiring_totp(world, "DP3A-KETAPANG", "61.04", [email])
    async with world.browser() as http:
        r = await sign_in(http, email, "salah-salah-salah")
        assert "error=credentials" in r.headers["location"]  # the password first, as always
        r = await sign_in(http, email, PASSWORD)
        assert r.headers["location"] == "/console/masuk/totp?next=%2Fconsole", r.headers
        cookie = r.headers["set-cookie"]
        assert "sinergi_pending=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/console/masuk" in cookie and "sinergi_session" not in http.cookies
        assert (await http.get("/console")).status_code == 303  # half signed in opens nothing
        page = await http.get("/console/masuk/totp")
        assert page.status_code == 200 and "Daftarkan verifikasi dua langkah" in page.text
        assert '<svg' in page.text and 'class="qr"' in page.text and "<script" not in page.text
        m = SECRET.search(page.text)
        assert m is not None
        secret = m.group(1).replace(" ", "")
        assert len(secret) == 32
        again = await http.get("/console/masuk/totp")
        assert SECRET.search(again.text).group(1) == m.group(1)  # type: ignore[union-attr]  # the same until enrolled
        async with world.app.state.services.db.read() as conn:
            stored = (await conn.execute(sa.select(OfficerSession.totp_candidate_enc)
                                         .where(OfficerSession.stage == "totp"))).scalars().all()
        assert stored and all(secret not in s for s in stored if s)  # encrypted while it waits
        r = await http.post("/console/masuk/totp", data={"csrf": "salah", "code": pyotp.TOTP(secret).now()})
        assert r.status_code == 403
        wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        r = await http.post("/console/masuk/totp", data={"csrf": csrf_of(page.text), "code": wrong, "next": "/console"})
        assert "error=second-factor" in r.headers["location"] and "sinergi_session" not in http.cookies
        assert "Kode salah" in (await http.get(r.headers["location"])).text
        r = await http.post("/console/masuk/totp", data={"csrf": csrf_of(page.text), "code": pyotp.TOTP(secret).now(),
                                                         "next": "/console"})
        assert r.headers["location"] == "/console" and "sinergi_session" in http.cookies
        assert (await http.get("/console")).status_code == 200
        assert (await http.get("/console/masuk/totp")).headers["location"].startswith("/console/masuk?error=step")
    officer = await _officer(world, email)
    assert officer.totp_secret_enc is not None and secret not in officer.totp_secret_enc
    async with world.browser() as http:  # from now on the code is asked with the password
        assert "error=second-factor" in (await sign_in(http, email, PASSWORD)).headers["location"]
    async with world.signed_in(email, PASSWORD, later_code(secret)):
        pass
    steps = [(e["action"], e["outcome"], e["detail"].get("next_step")) for e in await _entries(world, resource_id=str(officer.id))
             if e["action"] in ("officer.signin", "officer.totp_enrol")]
    assert steps[:4] == [("officer.signin", "denied", None), ("officer.signin", "allowed", "totp"),
                         ("officer.totp_enrol", "denied", None), ("officer.totp_enrol", "allowed", None)], steps
    assert steps[4] == ("officer.signin", "allowed", None)


async def test_a_half_done_sign_in_is_bounded(world: ConsoleWorld) -> None:
    """Wrong codes at the enrolment count as failed sign-ins (lock-out); a half-done sign-in's
    cookie is no session; without one the steps send the person back to the form."""
    email = "ragu@dp3a.kapuashulu.go.id"
    await _agency_requiring_totp(world, "DP3A-KAPUAS-HULU", "61.06", [email])
    async with world.browser() as http:
        for path in ("/console/masuk/totp", "/console/masuk/sandi-baru"):
            assert (await http.get(path)).headers["location"].startswith("/console/masuk?error=step")
            r = await http.post(path, data={"csrf": "x", "code": "123456"})
            assert r.headers["location"].startswith("/console/masuk?error=step")
        r = await sign_in(http, email, PASSWORD)
        pending = http.cookies["sinergi_pending"]
        page = await http.get("/console/masuk/sandi-baru")  # the other step: sent to its own
        assert page.headers["location"].startswith("/console/masuk/totp")
        page = await http.get("/console/masuk/totp")
        secret = SECRET.search(page.text).group(1).replace(" ", "")  # type: ignore[union-attr]
        wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        for _ in range(2):
            r = await http.post("/console/masuk/totp", data={"csrf": csrf_of(page.text), "code": wrong})
            assert "error=second-factor" in r.headers["location"]
        r = await http.post("/console/masuk/totp", data={"csrf": csrf_of(page.text), "code": wrong})
        assert r.headers["location"].startswith("/console/masuk?error=locked")  # the third: locked, step over
        r = await http.post("/console/masuk/totp", data={"csrf": csrf_of(page.text), "code": pyotp.TOTP(secret).now()})
        assert r.headers["location"].startswith("/console/masuk?error=step") and "sinergi_session" not in http.cookies
    async with world.browser() as http:
        assert "error=locked" in (await sign_in(http, email, PASSWORD)).headers["location"]
        http.cookies.set("sinergi_session", pending)  # a half-done sign-in's token is no session
        assert (await http.get("/console")).status_code == 303


async def test_keamanan_akun_changes_the_own_password_and_second_factor(world: ConsoleWorld) -> None:
    email = "sendiri@dp3a.bengkayangkab.go.id"
    async with operator_unit(world.app.state.services.db, "test") as session:
        await officers.create_officer(session, "DP3A-BENGKAYANG", OfficerCreate(
            email=email, scopes=["notices:read"], password=PASSWORD))
    new = "kata-sandi-baru-saya"
    async with world.signed_in(email, PASSWORD) as other, world.signed_in(email, PASSWORD) as http:
        page = await http.get("/console/keamanan")
        assert page.status_code == 200 and "Ganti kata sandi" in page.text and "belum didaftarkan" in page.text
        csrf = csrf_of(page.text)
        for data, msg in (({"password": "salah-salah-salah", "new_password": new, "confirm": new}, "err_credentials"),
                          ({"password": PASSWORD, "new_password": new, "confirm": new + "!"}, "err_password_invalid"),
                          ({"password": PASSWORD, "new_password": PASSWORD, "confirm": PASSWORD}, "err_password_reused")):
            r = await http.post("/console/keamanan/sandi", data={"csrf": csrf, **data})
            assert f"msg={msg}" in r.headers["location"], (data, r.headers)
        assert (await http.post("/console/keamanan/sandi", data={"password": PASSWORD, "new_password": new,
                                                                 "confirm": new})).status_code == 403  # no CSRF
        r = await http.post("/console/keamanan/sandi", data={"csrf": csrf, "password": PASSWORD, "new_password": new,
                                                             "confirm": new})
        assert "msg=ok_password_changed" in r.headers["location"]
        assert (await http.get("/console")).status_code == 200  # this session goes on
        assert (await other.get("/console")).status_code == 303  # the other one ended
        r = await http.post("/console/keamanan/totp/mulai", data={"csrf": csrf})
        assert r.headers["location"] == "/console/keamanan#totp"
        page = await http.get("/console/keamanan")
        m = SECRET.search(page.text)
        assert m is not None and "<svg" in page.text
        secret = m.group(1).replace(" ", "")
        wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
        r = await http.post("/console/keamanan/totp", data={"csrf": csrf, "password": new, "code": wrong})
        assert "msg=err_second_factor" in r.headers["location"]
        r = await http.post("/console/keamanan/totp", data={"csrf": csrf, "password": PASSWORD,
                                                            "code": pyotp.TOTP(secret).now()})
        assert "msg=err_credentials" in r.headers["location"]
        r = await http.post("/console/keamanan/totp", data={"csrf": csrf, "password": new,
                                                            "code": pyotp.TOTP(secret).now()})
        assert "msg=ok_totp_enrolled" in r.headers["location"]
        page = await http.get("/console/keamanan")
        assert "(TOTP) aktif" in page.text and SECRET.search(page.text) is None
    async with world.browser() as http:
        assert "error=credentials" in (await sign_in(http, email, PASSWORD)).headers["location"]
        assert "error=second-factor" in (await sign_in(http, email, new)).headers["location"]
    async with world.signed_in(email, new, later_code(secret)):
        pass
    oid = await _officer_id(world, email)
    mine = [(e["action"], e["outcome"], e["detail"].get("reason")) for e in await _entries(world, resource_id=oid)
            if e["action"] in ("officer.password_change", "officer.totp_enrol")]
    assert ("officer.password_change", "denied", "credentials") in mine
    assert ("officer.password_change", "allowed", None) in mine and ("officer.totp_enrol", "allowed", None) in mine
    assert all(e.get("officer") == oid for e in await _entries(world, resource_id=oid)
               if e["action"] in ("officer.password_change", "officer.totp_enrol"))


async def test_the_steps_and_the_account_page_are_rate_limited_as_sign_in_is(database_url: str) -> None:
    settings = Settings(database_url=database_url, mode="development", db_pool_size=5, rate_signin=3)
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        async with operator_unit(app.state.services.db, "test") as session:
            await agencies.create_agency(session, AgencyCreate(code="DP3A-MELAWI", name="DP3A Melawi",
                                                               kind=AgencyKind.women_child_protection,
                                                               jurisdiction="61.10"))
            await agencies.create_client(session, "DP3A-MELAWI", ClientCreate(scopes=["stats:read"]))
            await officers.create_officer(session, "DP3A-MELAWI", OfficerCreate(
                email="a@dp3a.melawikab.go.id", scopes=["stats:read"], password=PASSWORD))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            assert (await sign_in(http, "a@dp3a.melawikab.go.id", PASSWORD)).headers["location"] == "/console"  # 1
            csrf = csrf_of((await http.get("/console/keamanan")).text)
            seen = []
            for _ in range(3):  # 2, 3, then past the limit: refused before the password is checked
                r = await http.post("/console/keamanan/sandi", data={"csrf": csrf, "password": "salah-salah-salah",
                                                                     "new_password": "x" * 12, "confirm": "x" * 12})
                seen.append(r.headers["location"].split("msg=")[1])
            assert seen == ["err_credentials", "err_credentials", "err_rate"]
