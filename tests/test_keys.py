"""Signing keys survive restarts and rotate with overlap, every change of them is audited, and
only keys sealed with the data key are believed."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.app import create_app
from api.core import crypto, tokens
from api.core.db import Database, sync_url
from api.core.keys import rotate
from api.core.settings import DEV_DATA_KEY, Settings
from api.core.unit import operator_unit
from models import AgencyKind
from tests import forge
from tests.conftest import assert_problem

NIK = "6107074505900001"


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


async def test_issuing_tokens_and_checkpoints_builds_no_key(client, auditor, monkeypatch):
    """The signing key is built once, when the key store opens it: a token or a checkpoint
    built from the PEM each time (python-jose checking the RSA key again) cost ≈ 34 ms."""
    await auditor.token()  # the key store has opened the key
    built: list[object] = []
    construct = jwk.construct
    monkeypatch.setattr(jwk, "construct", lambda *a, **kw: built.append(a) or construct(*a, **kw))
    tokens_seen = {await auditor.token() for _ in range(3)}
    r = await client.get("/v1/audit/checkpoint", headers={"Authorization": f"Bearer {tokens_seen.pop()}"})
    assert r.status_code == 200, r.text
    assert built == []


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


# --- keys stored in the database are authenticated by the data key -------------------------


def _rsa_key() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return private, pem


def _jwk(kid: str, private: rsa.RSAPrivateKey) -> str:
    numbers = private.public_key().public_numbers()
    return json.dumps({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                       "n": forge.b64u(numbers.n.to_bytes(256, "big")), "e": forge.b64u(numbers.e.to_bytes(3, "big"))})


def _insert_key(database_url: str, kid: str, private_key_enc: str, public_jwk: str) -> None:
    """What a database writer without the data key can do: add a key row, dated to be the
    newest active key (the one a careless reader would sign with)."""
    eng = sa.create_engine(sync_url(database_url))
    with eng.begin() as c:
        c.execute(sa.text("INSERT INTO signing_key (kid, private_key_enc, public_jwk, created_at) "
                          "VALUES (:kid, :enc, :jwk, :created)"),
                  {"kid": kid, "enc": private_key_enc, "jwk": public_jwk,
                   "created": datetime.now(UTC) + timedelta(days=1)})
    eng.dispose()


def _forged_ciphertexts(kid: str, pem: str) -> dict[str, str]:
    """The attacker's options for ``private_key_enc``: it does not hold the data key."""
    return {
        "garbage": "v1." + forge.b64u(os.urandom(300)),
        "not-ciphertext": pem,
        "another-key": crypto.encrypt(pem, context=f"signing_key.private:{kid}", key=os.urandom(32)),
        "another-key-legacy": crypto.encrypt(pem, context="signing_key.private", key=os.urandom(32)),
    }


@pytest.mark.parametrize("how", ["garbage", "not-ciphertext", "another-key", "another-key-legacy"])
async def test_a_key_inserted_into_the_database_is_refused(keep_keys, client, auditor, app, db, settings,
                                                           database_url, caplog, how):
    private, pem = _rsa_key()
    kid = "f0rged"
    _insert_key(database_url, kid, _forged_ciphertexts(kid, pem)[how], _jwk(kid, private))
    caplog.set_level(logging.WARNING, logger="sinergi.keys")

    # A token signed with the inserted key: refused, though its kid names a stored key.
    token = forge.sign_rs256(forge.claims_for(auditor, settings), pem, kid)
    r = await client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert any(kid in rec.getMessage() and "refused" in rec.getMessage() for rec in caplog.records)
    # Not in the key set, now or after a restart; the service signs with its own key.
    await app.state.services.keys.load()
    genuine = await auditor.token()
    assert forge.header(genuine)["kid"] != kid
    async with another_instance(settings) as (_app2, c2):
        kids = {k["kid"] for k in (await c2.get("/.well-known/jwks.json")).json()["keys"]}
        assert kid not in kids and kids == {forge.header(genuine)["kid"]}
        r = await c2.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auditor.basic())
        assert forge.header(r.json()["access_token"])["kid"] == forge.header(genuine)["kid"]
        r = await c2.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
    # An audit checkpoint signed with it: refused, where the service's own verifies.
    headers = await auditor.headers()
    own = (await client.get("/v1/audit/checkpoint", headers=headers)).json()
    r = await client.get("/v1/audit/verify", params={"checkpoint": own["checkpoint"]}, headers=headers)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    forged = tokens.sign_checkpoint(signer=jwk.construct(pem, "RS256"), kid=kid, issuer=settings.issuer, chain=own["chain"],
                                    seq=own["seq"], hash=own["hash"], now=datetime.now(UTC))
    r = await client.get("/v1/audit/verify", params={"checkpoint": forged}, headers=headers)
    assert_problem(r, 422, "bad-checkpoint")


async def test_a_public_key_swapped_into_the_services_own_row_is_refused(keep_keys, client, auditor, settings,
                                                                         db, database_url):
    kid, _pem = await forge.active_key(db)
    private, pem = _rsa_key()
    eng = sa.create_engine(sync_url(database_url))
    with eng.begin() as c:
        c.execute(sa.text("UPDATE signing_key SET public_jwk = :jwk WHERE kid = :kid"),
                  {"jwk": _jwk(kid, private), "kid": kid})
    eng.dispose()
    token = forge.sign_rs256(forge.claims_for(auditor, settings), pem, kid)
    async with another_instance(settings) as (_app2, c2):
        r = await c2.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
        assert kid not in {k["kid"] for k in (await c2.get("/.well-known/jwks.json")).json()["keys"]}


async def test_keys_sealed_before_the_kid_was_bound_still_work(keep_keys, client, auditor, settings, db,
                                                               database_url):
    kid, pem = await forge.active_key(db)
    token = await auditor.token()
    eng = sa.create_engine(sync_url(database_url))
    with eng.begin() as c:  # as every key made before the kid was bound is stored
        c.execute(sa.text("UPDATE signing_key SET private_key_enc = :enc WHERE kid = :kid"),
                  {"enc": crypto.encrypt(pem, context="signing_key.private", key=settings.data_key_bytes), "kid": kid})
    eng.dispose()
    async with another_instance(settings) as (_app2, c2):
        assert [k["kid"] for k in (await c2.get("/.well-known/jwks.json")).json()["keys"]] == [kid]
        r = await c2.get("/v1/audit/verify", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text


async def test_an_app_made_with_its_own_keys_encrypts_with_them(keep_keys, settings, database_url):
    """``create_app(Settings(...))`` is the one source of the keys: not the environment, not
    the development keys. Its first start also makes a signing key of its own, since the one
    in the database is sealed with another data key."""
    data_key, index_key = (base64.urlsafe_b64encode(os.urandom(32)).decode() for _ in range(2))
    own = Settings(database_url=database_url, mode="production", data_key=data_key, index_key=index_key,
                   db_pool_size=10)
    dev_db = Database(settings)
    dev_kid = (await forge.active_key(dev_db))[0]
    await dev_db.dispose()
    async with another_instance(own) as (app2, c2):
        async with operator_unit(app2.state.services.db, "test") as session:
            await agencies.create_agency(session, AgencyCreate(code="BP3MI-KALBAR", name="BP3MI", jurisdiction="61",
                                                               kind=AgencyKind.migrant_protection))
            made = await agencies.create_client(session, "BP3MI-KALBAR",
                                                ClientCreate(scopes=["returnees:write", "returnees:read"]))
        r = await c2.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(made.client_id, made.client_secret))
        token = r.json()["access_token"]
        assert forge.header(token)["kid"] != dev_kid
        record = {"source_ref": "K-1", "full_name": "Siti Aminah", "nik": NIK, "sex": "F", "birth_date": "1990-05-05",
                  "origin_district": "61.07", "returned_from_country": "MY", "return_type": "deported",
                  "return_date": "2025-03-14", "trafficking_status": "possible"}
        r = await c2.post("/v1/returnees/batch", json={"records": [record]},
                          headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "created", r.text
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        nik_enc = c.execute(sa.text("SELECT nik_enc FROM returnee")).scalar_one()
        creates = c.execute(sa.text("SELECT body FROM audit_event WHERE action = 'keys.create'")).scalars().all()
    eng.dispose()
    assert crypto.decrypt(nik_enc, context="returnee.nik", key=own.data_key_bytes) == NIK
    with pytest.raises(InvalidTag):
        crypto.decrypt(nik_enc, context="returnee.nik", key=base64.urlsafe_b64decode(DEV_DATA_KEY))
    [create] = creates
    assert json.loads(create)["detail"]["refused"] == [dev_kid]
