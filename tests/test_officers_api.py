"""Managing officers through the API (``/v1/agencies/{code}/officers``): the operator (``admin``)
and the agency's own ``officers:manage`` list, read, change, disable, reset a password or a second
factor; another agency's officer is a 404; bad input is a 422 problem that changes nothing; what
a manager did is in the audit chain under the officer, and what it does is what a person notices
at the console's sign-in (a disabled officer's session ends, a reset password's old one is refused)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pyotp
import pytest
import sqlalchemy as sa

from api.core.db import Database
from api.core.unit import operator_unit
from models import Agency, AgencyKind, AuditEvent
from tests.conftest import MakeParty, Party, assert_problem
from tests.console_world import csrf_of, sign_in

BASE = "/v1/agencies/DP3A-BENGKAYANG/officers"
PASSWORD = "kata-sandi-petugas-1"


@dataclass
class World:
    client: httpx.AsyncClient
    app: Any
    db: Database
    operator: Party  # admin
    manager: Party  # DP3A-BENGKAYANG's officers:manage
    reader: Party  # DP3A-BENGKAYANG without officers:manage
    other: Party  # DP3A-SAMBAS's officers:manage
    headers: dict[str, dict[str, str]]

    def browser(self) -> httpx.AsyncClient:
        """A person's browser at the console: a cookie jar of its own, no redirects followed."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")

    async def officer(self, email: str, scopes: list[str] | None = None, password: str | None = PASSWORD) -> str:
        body: dict[str, Any] = {"email": email, "name": "Petugas", "scopes": scopes or ["notices:read"]}
        if password is not None:
            body["password"] = password
        r = await self.client.post(BASE, headers=self.headers["manager"], json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture
async def world(client: httpx.AsyncClient, app: Any, db: Database, make_party: MakeParty) -> World:
    operator = await make_party("SINERGI-OPERATOR", "61", ["admin"], kind=AgencyKind.operator)
    manager = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read notices:ack referrals:read officers:manage",
                               kind=AgencyKind.women_child_protection)
    reader = await make_party("DP3A-BENGKAYANG", "61.07", "notices:read")
    other = await make_party("DP3A-SAMBAS", "61.01", "notices:read officers:manage",
                             kind=AgencyKind.women_child_protection)
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    headers = {"operator": await operator.headers(), "manager": await manager.headers(),
               "reader": await reader.headers(), "other": await other.headers(), "none": {},
               "auditor": await auditor.headers()}
    return World(client, app, db, operator, manager, reader, other, headers)


@pytest.fixture
async def signed_in(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as ``siti@dp3a.bengkayangkab.go.id`` (made here)."""
    await world.officer("siti@dp3a.bengkayangkab.go.id")
    async with world.browser() as http:
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)
        assert r.headers["location"] == "/console", r.headers
        assert (await http.get("/console")).status_code == 200
        yield http


async def _entries(db: Database, **where: str) -> list[dict[str, Any]]:
    async with db.read() as conn:
        stmt = sa.select(AuditEvent.body).order_by(AuditEvent.seq)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEvent, k) == v)
        return [orjson.loads(b) for b in (await conn.execute(stmt)).scalars()]


async def test_who_may_manage_whose_officers(world: World) -> None:
    """The operator any agency's, the agency's own officers:manage its own; another agency's
    manager gets a 404 exactly as for an officer that does not exist; without the scope a 403."""
    oid = await world.officer("rina@dp3a.bengkayangkab.go.id")
    def new() -> dict[str, Any]:
        return {"email": f"x-{uuid.uuid4().hex[:6]}@dp3a.bengkayangkab.go.id", "scopes": ["notices:read"]}

    calls = [("GET", BASE, dict, 200), ("POST", BASE, new, 201), ("GET", f"{BASE}/{oid}", dict, 200),
             ("PATCH", f"{BASE}/{oid}", lambda: {"name": "Rina"}, 200),
             ("POST", f"{BASE}/{oid}/password", dict, 200),
             ("POST", f"{BASE}/{oid}/totp", lambda: {"enrol_at_sign_in": True}, 200)]
    for method, path, body, ok in calls:
        seen = {}
        for who in ("none", "reader", "other", "manager", "operator"):
            r = await world.client.request(method, path, headers=world.headers[who], json=body() or None)
            seen[who] = r.status_code
            if r.status_code >= 400:
                assert_problem(r, r.status_code)
        assert seen == {"none": 401, "reader": 403, "other": 404, "manager": ok, "operator": ok}, (method, path)
    # another agency's officer: a 404 like one that does not exist, under either agency's path
    for path in (f"{BASE}/{oid}", f"{BASE}/{uuid.uuid4()}", f"/v1/agencies/DP3A-SAMBAS/officers/{oid}"):
        r = await world.client.get(path, headers=world.headers["other"])
        assert_problem(r, 404, "not-found")
    r = await world.client.get(f"/v1/agencies/DP3A-SAMBAS/officers/{oid}", headers=world.headers["manager"])
    assert_problem(r, 404, "not-found")
    r = await world.client.get("/v1/agencies/NO-SUCH/officers", headers=world.headers["operator"])
    assert_problem(r, 404)


async def test_the_list_pages_through_the_officers_and_never_shows_a_secret(world: World) -> None:
    emails = sorted(f"p{i}@dp3a.bengkayangkab.go.id" for i in (4, 1, 3, 0, 2))
    for e in emails:
        await world.officer(e)
    async with world.browser() as http:  # one of them signs in: the list says when
        assert (await sign_in(http, emails[2], PASSWORD)).headers["location"] == "/console"
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(5):
        r = await world.client.get(BASE, headers=world.headers["manager"],
                                   params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        seen += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert [o["email"] for o in seen] == emails
    text = orjson.dumps(seen).decode()
    assert "argon2" not in text and PASSWORD not in text
    for o in seen:
        assert not {"password", "password_hash", "totp_secret_enc", "totp_uri", "secret"} & o.keys()
        assert o["second_factor"] is False and o["disabled"] is False and o["disabled_at"] is None
        assert o["scopes"] == ["notices:read"] and o["agency"] == "DP3A-BENGKAYANG"
    assert [o["email"] for o in seen if o["last_signin_at"]] == [emails[2]]
    assert_problem(await world.client.get(BASE, headers=world.headers["manager"], params={"cursor": "nonsense"}), 400)


async def test_scopes_beyond_the_agency_and_bad_input_are_a_422_that_changes_nothing(world: World) -> None:
    oid = await world.officer("dewi@dp3a.bengkayangkab.go.id", ["notices:read", "notices:ack"])
    before = (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json()
    for body, suffix in (({"scopes": ["notices:read", "pii:read"]}, "scopes-not-held"),
                         ({"scopes": ["notices:read", "officers:manage", "stats:read"]}, "scopes-not-held"),
                         ({"scopes": ["notices:read", "no:such"]}, None),
                         ({"scopes": []}, None),
                         ({}, None),
                         ({"disabled": None}, None),
                         ({"name": "Dewi\u202e"}, None),
                         ({"name": "Dewi", "password_hash": "x"}, None),
                         ({"disabled": "perhaps"}, None)):
        r = await world.client.patch(f"{BASE}/{oid}", headers=world.headers["manager"], json=body)
        problem = assert_problem(r, 422, suffix)
        assert problem.get("errors") is not None, problem
    assert (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json() == before
    r = await world.client.post(BASE, headers=world.headers["manager"],
                                json={"email": "lebih@dp3a.bengkayangkab.go.id", "scopes": ["pii:read"]})
    assert_problem(r, 422, "scopes-not-held")
    # within the agency's: changed, as the reply and a later read say
    r = await world.client.patch(f"{BASE}/{oid}", headers=world.headers["manager"],
                                 json={"scopes": ["referrals:read", "notices:read"], "name": "Dewi Lestari"})
    assert r.status_code == 200, r.text
    assert r.json()["scopes"] == ["referrals:read", "notices:read"] and r.json()["name"] == "Dewi Lestari"
    assert (await world.client.get(f"{BASE}/{oid}", headers=world.headers["operator"])).json() == r.json()


async def test_a_manager_grants_only_scopes_it_holds(world: World, make_party: MakeParty) -> None:
    """The agency holds ``returnees:read`` (another of its clients has it); its manager does not.
    The manager can grant it to nobody, itself included: an officer it made with it, whose
    password it can reset, would be a way to read beyond its own scopes. The operator can."""
    await make_party("DP3A-BENGKAYANG", "61.07", "returnees:read")
    oid = await world.officer("eka@dp3a.bengkayangkab.go.id", ["notices:read"])
    before = (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json()
    r = await world.client.patch(f"{BASE}/{oid}", headers=world.headers["manager"],
                                 json={"scopes": ["notices:read", "returnees:read"]})
    problem = assert_problem(r, 403, "scopes-not-yours")
    assert problem["errors"] == [{"field": "scopes", "message": "not held by you: returnees:read"}]
    r = await world.client.post(BASE, headers=world.headers["manager"],
                                json={"email": "fajar@dp3a.bengkayangkab.go.id", "scopes": ["returnees:read"]})
    assert_problem(r, 403, "scopes-not-yours")
    assert (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json() == before
    r = await world.client.patch(f"{BASE}/{oid}", headers=world.headers["operator"],
                                 json={"scopes": ["notices:read", "returnees:read"]})
    assert r.status_code == 200 and r.json()["scopes"] == ["notices:read", "returnees:read"], r.text


async def test_a_disabled_officer_cannot_sign_in_and_their_session_ends(world: World,
                                                                      signed_in: httpx.AsyncClient) -> None:
    oid = await _id_of(world, "siti@dp3a.bengkayangkab.go.id")
    r = await world.client.patch(f"{BASE}/{oid}", headers=world.headers["manager"], json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True and r.json()["disabled_at"], r.text
    r = await signed_in.get("/console")
    assert r.status_code == 303 and "expired=1" in r.headers["location"]  # at once, not at the next sign-in
    async with world.browser() as http:
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)
        assert "error=credentials" in r.headers["location"] and "sinergi_session" not in http.cookies
    r = await world.client.patch(f"{BASE}/{oid}", headers=world.headers["manager"], json={"disabled": False})
    assert r.status_code == 200 and r.json()["disabled"] is False
    async with world.browser() as http:
        assert (await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)).headers["location"] == "/console"


async def test_a_reset_password_replaces_the_old_one_and_the_officer_chooses_their_own(
        world: World, signed_in: httpx.AsyncClient) -> None:
    oid = await _id_of(world, "siti@dp3a.bengkayangkab.go.id")
    async with world.browser() as http:  # locked out after failed attempts (5 by default)
        for _ in range(world.app.state.services.settings.signin_lockout_after):
            await sign_in(http, "siti@dp3a.bengkayangkab.go.id", "salah-salah-salah")
        assert "error=locked" in (await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)).headers["location"]
    r = await world.client.post(f"{BASE}/{oid}/password", headers=world.headers["manager"])
    assert r.status_code == 200, r.text
    one_time = r.json()["password"]
    assert len(one_time) >= 16 and r.json()["email"] == "siti@dp3a.bengkayangkab.go.id"
    assert (await signed_in.get("/console")).status_code == 303  # the session ended
    listed = (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json()
    assert listed["password_must_change"] is True and listed["locked_until"] is None
    async with world.browser() as http:
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)
        assert "error=credentials" in r.headers["location"]  # the old password is refused
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", one_time)
        assert r.headers["location"].startswith("/console/masuk/sandi-baru"), r.headers  # not a session yet
        assert "sinergi_session" not in http.cookies
        assert (await http.get("/console")).status_code == 303
        page = await http.get(r.headers["location"])
        assert page.status_code == 200 and "Buat kata sandi baru" in page.text
        r = await http.post("/console/masuk/sandi-baru", data={"csrf": csrf_of(page.text), "next": "/console",
                                                               "new_password": one_time, "confirm": one_time})
        assert "error=password-reused" in r.headers["location"]
        r = await http.post("/console/masuk/sandi-baru", data={"csrf": csrf_of(page.text), "next": "/console",
                                                               "new_password": "pendek", "confirm": "pendek"})
        assert "error=password-invalid" in r.headers["location"]
        mine = "kata-sandi-saya-sendiri"
        r = await http.post("/console/masuk/sandi-baru", data={"csrf": csrf_of(page.text), "next": "/console",
                                                               "new_password": mine, "confirm": mine})
        assert r.headers["location"] == "/console" and "sinergi_session" in http.cookies
        assert (await http.get("/console")).status_code == 200
    async with world.browser() as http:
        assert "error=credentials" in (await sign_in(http, "siti@dp3a.bengkayangkab.go.id", one_time)).headers["location"]
        assert (await sign_in(http, "siti@dp3a.bengkayangkab.go.id", mine)).headers["location"] == "/console"
    assert (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json()["password_must_change"] is False


async def test_a_new_second_factor_replaces_the_old_and_ends_the_sessions(world: World,
                                                                         signed_in: httpx.AsyncClient) -> None:
    oid = await _id_of(world, "siti@dp3a.bengkayangkab.go.id")
    r = await world.client.post(f"{BASE}/{oid}/totp", headers=world.headers["manager"], json={})
    assert r.status_code == 200, r.text
    first = pyotp.parse_uri(r.json()["totp_uri"]).secret
    assert (await signed_in.get("/console")).status_code == 303
    assert (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json()["second_factor"] is True
    r = await world.client.post(f"{BASE}/{oid}/totp", headers=world.headers["operator"], json={})
    second = pyotp.parse_uri(r.json()["totp_uri"]).secret
    assert second != first
    async with world.browser() as http:
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)
        assert "error=second-factor" in r.headers["location"]  # enrolled: the code is asked
        if pyotp.TOTP(first).now() != pyotp.TOTP(second).now():
            r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD, pyotp.TOTP(first).now())
            assert "error=second-factor" in r.headers["location"]  # the old secret no longer works
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD, pyotp.TOTP(second).now())
        assert r.headers["location"] == "/console"
    r = await world.client.post(f"{BASE}/{oid}/totp", headers=world.headers["manager"], json={"enrol_at_sign_in": True})
    assert r.status_code == 200 and r.json()["totp_uri"] is None
    listed = (await world.client.get(f"{BASE}/{oid}", headers=world.headers["manager"])).json()
    assert listed["second_factor"] is False and listed["second_factor_required"] is False
    async with world.browser() as http:  # the agency requires none: no factor, no step
        assert (await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)).headers["location"] == "/console"
    async with operator_unit(world.db, "test") as session:
        agency = await session.get(Agency, "DP3A-BENGKAYANG")
        assert agency is not None
        agency.requires_totp = True
        session.add(agency)
    async with world.browser() as http:  # it does now: enrolled at the sign-in (tests/test_console_officers.py)
        r = await sign_in(http, "siti@dp3a.bengkayangkab.go.id", PASSWORD)
        assert r.headers["location"].startswith("/console/masuk/totp") and "sinergi_session" not in http.cookies


async def test_every_read_and_change_is_audited_under_the_officer(world: World) -> None:
    oid = await world.officer("audit@dp3a.bengkayangkab.go.id")
    m = world.headers["manager"]
    await world.client.get(BASE, headers=m)
    await world.client.get(f"{BASE}/{oid}", headers=m)
    await world.client.patch(f"{BASE}/{oid}", headers=m, json={"scopes": ["notices:read", "notices:ack"]})
    await world.client.patch(f"{BASE}/{oid}", headers=world.headers["operator"], json={"disabled": True})
    await world.client.post(f"{BASE}/{oid}/password", headers=m)
    await world.client.post(f"{BASE}/{oid}/totp", headers=m, json={})
    await world.client.get(f"{BASE}/{oid}", headers=world.headers["other"])  # another agency: refused
    await world.client.patch(f"{BASE}/{oid}", headers=m, json={"scopes": ["pii:read"]})  # refused
    entries = [e for e in await _entries(world.db) if e["resource_id"] == oid or e["action"] == "officer.list"]
    actions = [(e["action"], e["outcome"], e["client_id"]) for e in entries]
    assert actions == [
        ("officer.create", "allowed", world.manager.client_id),
        ("officer.list", "allowed", world.manager.client_id),
        ("officer.read", "allowed", world.manager.client_id),
        ("officer.update", "allowed", world.manager.client_id),
        ("officer.disable", "allowed", world.operator.client_id),
        ("officer.password_reset", "allowed", world.manager.client_id),
        ("officer.totp_reset", "allowed", world.manager.client_id),
        ("officer.get", "denied", world.other.client_id),
        ("officer.update", "failed", world.manager.client_id),
    ], actions
    assert entries[3]["detail"]["changes"] == {"scopes": ["notices:read", "notices:ack"]}
    secret_words = ("argon2", PASSWORD, "otpauth")
    assert not any(w in orjson.dumps(entries).decode() for w in secret_words)
    # the auditor finds them by the officer's id, as GET /v1/audit?resource_id= does
    r = await world.client.get("/v1/audit", headers=world.headers["auditor"], params={"resource_id": oid, "limit": 50})
    assert r.status_code == 200, r.text
    found = {e["action"] for e in r.json()["items"]}
    assert {"officer.create", "officer.list", "officer.read", "officer.password_reset", "officer.totp_reset"} <= found


async def _id_of(world: World, email: str) -> str:
    r = await world.client.get(BASE, headers=world.headers["manager"], params={"limit": 500})
    return next(o["id"] for o in r.json()["items"] if o["email"] == email)
