"""The operator's endpoints and commands: registering agencies and their API clients."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from api.core.db import sync_url
from models import AgencyKind
from tests.conftest import assert_problem


@pytest.fixture
async def admin(make_party):
    return await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)


async def test_register_an_agency(client, admin):
    headers = await admin.headers()
    data = {"code": "POLRES-BENGKAYANG", "name": "Polres Bengkayang", "kind": "police", "jurisdiction": "61.07"}
    r = await client.post("/v1/agencies", headers=headers, json=data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in data} == data and body["created_at"].endswith(("Z", "+00:00"))
    assert_problem(await client.post("/v1/agencies", headers=headers, json=data), 409, "conflict")
    body = assert_problem(await client.post("/v1/agencies", headers=headers,
                                            json=data | {"code": "X-DISTRICT", "jurisdiction": "61.99"}), 422)
    assert [e["field"] for e in body["errors"]] == ["jurisdiction"]
    for bad in ("99", "35.99", "61.07.99", "", "Bengkayang"):
        r = await client.post("/v1/agencies", headers=headers, json=data | {"code": "X-DISTRICT", "jurisdiction": bad})
        assert_problem(r, 422)
    r = await client.post("/v1/agencies", headers=headers, json=data | {"code": "X", "kind": "ministry"})
    assert_problem(r, 422)


async def test_only_the_operator_registers(client, make_party):
    other = await make_party("BP3MI-KALBAR", "61", ["returnees:write", "notices:write"])
    r = await client.post("/v1/agencies", headers=await other.headers(),
                          json={"code": "ROGUE", "name": "Rogue", "jurisdiction": "61"})
    assert_problem(r, 403)
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'
    assert_problem(await client.post("/v1/agencies", json={"code": "ROGUE", "name": "Rogue", "jurisdiction": "61"}), 401)


async def test_list_agencies_in_pages(client, admin):
    headers = await admin.headers()
    codes = [f"DINSOS-{i:02d}" for i in range(7)]
    for code in reversed(codes):
        r = await client.post("/v1/agencies", headers=headers, json={"code": code, "name": code, "jurisdiction": "61.07"})
        assert r.status_code == 201
    everything = (await client.get("/v1/agencies", headers=headers)).json()
    assert everything["next_cursor"] is None
    assert [a["code"] for a in everything["items"]] == sorted(codes + ["OPERATOR"])
    seen, cursor = [], None
    for _ in range(10):
        r = await client.get("/v1/agencies", headers=headers, params={"limit": 3} | ({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200
        seen += [a["code"] for a in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(codes + ["OPERATOR"])
    assert_problem(await client.get("/v1/agencies", headers=headers, params={"limit": 501}), 422)
    assert_problem(await client.get("/v1/agencies", headers=headers, params={"cursor": "%%%"}), 400)


async def test_create_a_client_shows_its_secret_once(client, admin, database_url):
    headers = await admin.headers()
    await client.post("/v1/agencies", headers=headers,
                      json={"code": "POLRES-BENGKAYANG", "name": "Polres", "jurisdiction": "61.07"})
    r = await client.post("/v1/agencies/POLRES-BENGKAYANG/clients", headers=headers,
                          json={"scopes": ["referrals:read", "referrals:respond"], "name": "case system"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["agency"] == "POLRES-BENGKAYANG"
    assert created["scopes"] == ["referrals:read", "referrals:respond"]
    secret = created["client_secret"]
    assert len(secret) >= 32
    # Stored only as a hash: the secret is nowhere in the table, nor in the audit log.
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        rows = [tuple(r) for r in c.execute(sa.text("SELECT * FROM api_client"))]
        audit = [r[0] for r in c.execute(sa.text("SELECT body FROM audit_event"))]
    eng.dispose()
    assert any(created["client_id"] in map(str, row) for row in rows)
    assert not any(secret in str(v) for row in rows for v in row)
    assert not any(secret in body for body in audit)
    # The credentials work, with the scopes given.
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(created["client_id"], secret))
    assert r.status_code == 200 and r.json()["scope"] == "referrals:read referrals:respond"
    # Unknown agency, unknown scope.
    assert_problem(await client.post("/v1/agencies/NOPE/clients", headers=headers, json={"scopes": ["admin"]}), 404)
    body = assert_problem(await client.post("/v1/agencies/POLRES-BENGKAYANG/clients", headers=headers,
                                            json={"scopes": ["referrals:read", "root"]}), 422)
    assert body["errors"][0]["field"] == "scopes" and "root" in body["errors"][0]["message"]


def test_the_agency_and_client_commands(sinergi, database_url):
    r = sinergi("agency", "add", "DINSOS-BENGKAYANG", "--name", "Dinas Sosial Bengkayang",
                "--jurisdiction", "61.07", "--kind", "social_services")
    assert r.exit_code == 0, r.output
    agency = json.loads(r.output)
    assert agency["code"] == "DINSOS-BENGKAYANG" and agency["jurisdiction"] == "61.07"
    assert agency["kind"] == "social_services"

    r = sinergi("agency", "add", "DINSOS-BENGKAYANG", "--name", "Again", "--jurisdiction", "61.07")
    assert r.exit_code != 0 and "already registered" in r.output
    r = sinergi("agency", "add", "X", "--name", "X district", "--jurisdiction", "61.99")
    assert r.exit_code != 0 and "61.99" in r.output

    r = sinergi("client", "create", "--agency", "DINSOS-BENGKAYANG", "--scopes", "notices:read notices:ack")
    assert r.exit_code == 0, r.output
    creds = json.loads(r.output)
    assert set(creds) == {"client_id", "client_secret"}
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        row = c.execute(sa.text("SELECT agency_code, scopes, secret_hash FROM api_client WHERE client_id = :c"),
                        {"c": creds["client_id"]}).one()
        actions = c.execute(sa.text("SELECT action FROM audit_event ORDER BY seq")).scalars().all()
    eng.dispose()
    assert row[0] == "DINSOS-BENGKAYANG" and row[1] == "notices:ack notices:read"
    assert creds["client_secret"] not in row[2]
    assert actions == ["agency.create", "client.create"]

    assert sinergi("client", "create", "--agency", "NOPE", "--scopes", "stats:read").exit_code != 0
    assert sinergi("client", "create", "--agency", "DINSOS-BENGKAYANG", "--scopes", "everything").exit_code != 0
    r = sinergi("client", "disable", "--agency", "DINSOS-BENGKAYANG", creds["client_id"])
    assert r.exit_code == 0, r.output
