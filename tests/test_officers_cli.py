"""``sinergi officers create / list / disable / enable / reset-password / reset-totp``: the operator's
way to give people of an agency an account and to help them back in (the same service functions
as the API's routes); and the limits on signing in."""

from __future__ import annotations

import json
from typing import Any

import httpx
import sqlalchemy as sa

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.app import create_app
from api.core.db import Database
from api.core.settings import Settings
from api.core.unit import operator_unit
from api.officers import service as officers
from api.officers.schemas import OfficerCreate, OfficerUpdate
from models import AgencyKind, Officer, OfficerSession
from tests.console_world import sign_in


def test_the_operator_creates_and_disables_an_officer(sinergi: Any, database_url: str) -> None:
    assert sinergi("agency", "add", "DP3A-MELAWI", "--name", "DP3A Kabupaten Melawi", "--jurisdiction", "61.10",
                   "--kind", "women_child_protection").exit_code == 0
    assert sinergi("client", "create", "--agency", "DP3A-MELAWI", "--scopes", "notices:read notices:ack").exit_code == 0
    made = sinergi("officers", "create", "--agency", "DP3A-MELAWI", "--email", "Petugas@DP3A.melawikab.go.id",
                   "--scopes", "notices:read", "--name", "Petugas Melawi")
    assert made.exit_code == 0, made.output
    created = json.loads(made.output)
    assert created["email"] == "petugas@dp3a.melawikab.go.id" and len(created["password"]) >= 16
    assert created["totp_uri"] is None
    again = sinergi("officers", "create", "--agency", "DP3A-MELAWI", "--email", "petugas@dp3a.melawikab.go.id",
                    "--scopes", "notices:read")
    assert again.exit_code != 0 and "exists" in again.output
    beyond = sinergi("officers", "create", "--agency", "DP3A-MELAWI", "--email", "lain@dp3a.melawikab.go.id",
                     "--scopes", "pii:read")
    assert beyond.exit_code != 0 and "does not hold pii:read" in beyond.output
    engine = sa.create_engine(database_url.replace("+aiosqlite", "").replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(Officer.password_hash)).scalar_one()
    finally:
        engine.dispose()
    assert stored.startswith("$argon2id$") and created["password"] not in stored
    assert officers.password_matches(stored, created["password"])
    gone = sinergi("officers", "disable", "--email", "petugas@dp3a.melawikab.go.id")
    assert gone.exit_code == 0, gone.output
    (listed,) = [json.loads(line) for line in sinergi("officers", "list", "--agency", "DP3A-MELAWI").output.splitlines()]
    assert listed["email"] == "petugas@dp3a.melawikab.go.id" and listed["disabled"] is True
    assert listed["second_factor"] is False and listed["password_must_change"] is True
    assert not {"password", "password_hash", "totp_secret_enc", "totp_uri"} & listed.keys()
    assert stored not in json.dumps(listed)
    assert sinergi("officers", "enable", "--email", "petugas@dp3a.melawikab.go.id").exit_code == 0
    reset = sinergi("officers", "reset-password", "--email", "petugas@dp3a.melawikab.go.id")
    assert reset.exit_code == 0, reset.output
    new_password = json.loads(reset.output)["password"]
    assert len(new_password) >= 16 and new_password != created["password"]
    totp = sinergi("officers", "reset-totp", "--email", "petugas@dp3a.melawikab.go.id")
    assert json.loads(totp.output)["totp_uri"].startswith("otpauth://totp/")
    cleared = sinergi("officers", "reset-totp", "--email", "petugas@dp3a.melawikab.go.id", "--at-sign-in")
    assert json.loads(cleared.output)["totp_uri"] is None
    (listed,) = [json.loads(line) for line in sinergi("officers", "list", "--agency", "DP3A-MELAWI").output.splitlines()]
    assert listed["disabled"] is False and listed["second_factor"] is False
    engine = sa.create_engine(database_url.replace("+aiosqlite", "").replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(Officer.password_hash)).scalar_one()
    finally:
        engine.dispose()
    assert officers.password_matches(stored, new_password) and not officers.password_matches(stored, created["password"])
    unknown = sinergi("officers", "reset-password", "--email", "nobody@dp3a.melawikab.go.id")
    assert unknown.exit_code != 0 and "No officer" in unknown.output


async def test_disabling_ends_the_officer_sessions(db: Database) -> None:
    async with operator_unit(db, "test") as session:
        await agencies.create_agency(session, AgencyCreate(code="DP3A-SAMBAS", name="DP3A Kabupaten Sambas",
                                                           kind=AgencyKind.women_child_protection, jurisdiction="61.01"))
        await agencies.create_client(session, "DP3A-SAMBAS", ClientCreate(scopes=["notices:read"]))
        await officers.create_officer(session, "DP3A-SAMBAS", OfficerCreate(
            email="a@dp3a.sambas.go.id", scopes=["notices:read"], password="panjang-sekali-123"))
    async with operator_unit(db, "test") as session:
        result = await officers.sign_in(session, db.settings, "a@dp3a.sambas.go.id", "panjang-sekali-123", None)
        assert isinstance(result, officers.SignedIn)
    async with operator_unit(db, "test") as session:
        assert await officers.open_session(session, db.settings, result.token) is not None
        officer = await officers.officer_by_email(session, "a@dp3a.sambas.go.id")
        await officers.update_officer(session, "DP3A-SAMBAS", officer.id, OfficerUpdate(disabled=True))
    async with operator_unit(db, "test") as session:
        assert await officers.open_session(session, db.settings, result.token) is None
        refused = await officers.sign_in(session, db.settings, "a@dp3a.sambas.go.id", "panjang-sekali-123", None)
        assert isinstance(refused, officers.Refused)
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(OfficerSession))).scalar_one() == 0


async def test_sign_in_is_rate_limited_per_address(database_url: str) -> None:
    settings = Settings(database_url=database_url, mode="development", db_pool_size=5, rate_signin=2)
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            seen = []
            for _ in range(3):
                r = await sign_in(http, "siapa@contoh.go.id", "bukan-kata-sandi")
                seen.append(r.headers["location"].split("&")[0])
    assert seen == ["/console/masuk?error=credentials"] * 2 + ["/console/masuk?error=rate"]
