"""Signing keys survive restarts and rotate with overlap, and every change of them is audited."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.core.db import sync_url
from api.core.keys import rotate
from models import AgencyKind
from tests import forge


@asynccontextmanager
async def another_instance(settings):
    """A second app on the same database, as after a restart or in another process."""
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


@pytest.fixture
def keep_keys(database_url):
    """Put the signing keys back as they were: on PostgreSQL they are kept between tests."""
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(sa.text("SELECT * FROM signing_key"))]
    yield
    with eng.begin() as c:
        c.execute(sa.text("DELETE FROM signing_key"))
        for row in rows:
            cols = ", ".join(row)
            c.execute(sa.text(f"INSERT INTO signing_key ({cols}) VALUES ({', '.join(':' + k for k in row)})"), row)
    eng.dispose()


@pytest.fixture
async def auditor(make_party):
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


async def test_a_token_outlives_a_restart(client, auditor, settings, app):
    token = await auditor.token()
    kid = forge.header(token)["kid"]
    async with another_instance(settings) as (_app2, c2):
        r = await c2.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        # The restarted service signs with the same key: nothing new was generated.
        r = await c2.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auditor.basic())
        assert forge.header(r.json()["access_token"])["kid"] == kid
        assert [k["kid"] for k in (await c2.get("/.well-known/jwks.json")).json()["keys"]] == [kid]


async def test_rotation_keeps_old_tokens_working(keep_keys, client, auditor, settings, app, db):
    old_token = await auditor.token()
    old_kid = forge.header(old_token)["kid"]
    new_kid = await rotate(db)
    assert new_kid != old_kid
    async with another_instance(settings) as (_app2, c2):
        r = await c2.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auditor.basic())
        new_token = r.json()["access_token"]
        assert forge.header(new_token)["kid"] == new_kid
        kids = {k["kid"] for k in (await c2.get("/.well-known/jwks.json")).json()["keys"]}
        assert kids == {old_kid, new_kid}
        for token in (old_token, new_token):
            r = await c2.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
    # The instance that was running during the rotation accepts the new key's tokens at once.
    r = await client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {new_token}"})
    assert r.status_code == 200, r.text
    # The instance that was running during the rotation, once it has refreshed its keys (it
    # does so periodically and when a token names a key it does not know), signs with the new
    # key and still accepts the old tokens.
    await app.state.services.keys.load()
    token = await auditor.token()
    assert forge.header(token)["kid"] == new_kid
    for t in (old_token, new_token, token):
        r = await client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 200, r.text
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_kid}


def test_keys_rotate_command(keep_keys, database_url, sinergi):
    first = sinergi("keys", "rotate")
    assert first.exit_code == 0, first.output
    second = sinergi("keys", "rotate")
    kid1, kid2 = json.loads(first.output)["kid"], json.loads(second.output)["kid"]
    assert kid1 != kid2
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        active = c.execute(sa.text("SELECT kid FROM signing_key WHERE retired_at IS NULL")).scalars().all()
        total = c.execute(sa.text("SELECT count(*) FROM signing_key")).scalar()
    eng.dispose()
    assert active == [kid2]
    assert total == 3


async def test_keys_rotate_leaves_an_audit_entry(keep_keys, client, auditor, sinergi, db):
    old_kid, _pem = await forge.active_key(db)
    r = await asyncio.to_thread(sinergi, "keys", "rotate")  # the command runs its own event loop
    assert r.exit_code == 0, r.output
    new_kid = json.loads(r.output)["kid"]
    r = await client.get("/v1/audit", params={"action": "keys.rotate"}, headers=await auditor.headers())
    assert r.status_code == 200, r.text
    [entry] = r.json()["items"]
    assert entry["client_id"] == "cli" and entry["outcome"] == "allowed"
    assert entry["resource_type"] == "signing_key" and entry["resource_id"] == new_kid
    assert entry["detail"]["kid"] == new_kid and entry["detail"]["retired"] == [old_kid]
    r = await client.get("/v1/audit/verify", headers=await auditor.headers())
    assert r.json()["ok"] is True


async def test_the_first_start_leaves_an_audit_entry(keep_keys, settings, database_url):
    eng = sa.create_engine(sync_url(database_url))
    with eng.begin() as c:
        c.execute(sa.text("DELETE FROM signing_key"))
    async with another_instance(settings) as (app2, c2):
        [key] = (await c2.get("/.well-known/jwks.json")).json()["keys"]
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT action, client_id, resource_id, body FROM audit_event")).all()
    eng.dispose()
    [(action, actor, kid, body)] = rows
    assert (action, actor, kid) == ("keys.create", "service", key["kid"])
    assert json.loads(body)["detail"] == {"kid": key["kid"]}
