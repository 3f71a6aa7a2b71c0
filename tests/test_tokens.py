"""Access tokens: what the service accepts, what it refuses, and how it issues them."""

from __future__ import annotations

import base64
import time

import pytest
import sqlalchemy as sa

from api.agencies import service as agencies
from api.core.unit import operator_unit
from models import AgencyKind, AuditEvent
from tests import forge
from tests.conftest import assert_problem

VERIFY = "/v1/audit/verify"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(r) -> dict:
    body = assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), r.headers
    return body


@pytest.fixture
async def auditor(make_party):
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


async def test_a_good_token_works(client, auditor):
    r = await client.get(VERIFY, headers=await auditor.headers())
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True


async def test_a_hand_made_token_with_every_property_right_works(client, auditor, db, settings):
    # The control for the forgeries below: they differ from this one in one property each.
    kid, pem = await forge.active_key(db)
    token = forge.sign_rs256(forge.claims_for(auditor, settings), pem, kid)
    r = await client.get(VERIFY, headers=bearer(token))
    assert r.status_code == 200, r.text


async def test_no_token(client, auditor):
    assert_invalid_token(await client.get(VERIFY))
    assert_invalid_token(await client.get(VERIFY, headers={"Authorization": "Bearer "}))
    assert_invalid_token(await client.get(VERIFY, headers=auditor.basic()))
    assert_invalid_token(await client.get(VERIFY, headers=bearer("not.a.jwt")))


async def test_alg_none_is_refused(client, auditor, settings):
    claims = forge.claims_for(auditor, settings)
    for alg in ("none", "None", "NONE"):
        token = forge.unsigned({"alg": alg, "typ": "at+jwt", "kid": "x"}, claims)
        assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))


async def test_hs256_signed_with_the_public_key_is_refused(client, auditor, db, settings):
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid, _pem = await forge.active_key(db)
    public = next(k for k in jwks["keys"] if k["kid"] == kid)
    pem = forge.jwk_to_pem(public)
    claims = forge.claims_for(auditor, settings)
    for secret in (pem, pem.strip()):
        token = forge.sign_hs256({"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims, secret)
        assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"exp": int(time.time()) - 120, "iat": int(time.time()) - 1000}, id="expired"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
        pytest.param({"aud": "someone-else"}, id="wrong-aud"),
        pytest.param({"aud": None}, id="no-aud"),
        pytest.param({"iss": "https://keycloak.example.org/realms/x"}, id="wrong-iss"),
        pytest.param({"jti": None}, id="no-jti"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"client_id": "someone-else"}, id="client-id-not-sub"),
    ],
)
async def test_a_token_wrong_in_one_claim_is_refused(client, auditor, db, settings, change):
    kid, pem = await forge.active_key(db)
    token = forge.sign_rs256(forge.claims_for(auditor, settings, **change), pem, kid)
    assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))


async def test_a_token_issued_in_the_future_is_refused(client, auditor, db, settings):
    """Signed with the service's own key, valid (``nbf``) now, expiring in ten minutes, but
    claiming to be issued in five: no clock of this service issued it."""
    kid, pem = await forge.active_key(db)
    now = int(time.time())
    token = forge.sign_rs256(forge.claims_for(auditor, settings, iat=now + 300, nbf=now, exp=now + 600), pem, kid)
    body = assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))
    assert "future" in body["detail"]
    # within the leeway for clock skew it is accepted
    token = forge.sign_rs256(forge.claims_for(auditor, settings, iat=now + 5, nbf=now, exp=now + 600), pem, kid)
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200


async def test_a_token_living_longer_than_the_service_issues_is_refused(client, auditor, db, settings):
    """A token for a day (or a year) from a key that leaked: not one this service issues, whose
    tokens live ``access_token_ttl`` seconds."""
    kid, pem = await forge.active_key(db)
    now = int(time.time())
    ttl = settings.access_token_ttl
    for lifetime in (ttl + 1, 86_400, 365 * 86_400):
        token = forge.sign_rs256(forge.claims_for(auditor, settings, iat=now, nbf=now, exp=now + lifetime), pem, kid)
        body = assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))
        assert "longer" in body["detail"]
    token = forge.sign_rs256(forge.claims_for(auditor, settings, iat=now, nbf=now, exp=now + ttl), pem, kid)
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id_token", None])
async def test_a_token_of_the_wrong_type_is_refused(client, auditor, db, settings, typ):
    kid, pem = await forge.active_key(db)
    token = forge.sign_rs256(forge.claims_for(auditor, settings), pem, kid, typ=typ)
    assert forge.header(token).get("typ") == typ
    assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))


async def test_an_unknown_or_missing_kid_is_refused(client, auditor, db, settings):
    _kid, pem = await forge.active_key(db)
    claims = forge.claims_for(auditor, settings)
    assert_invalid_token(await client.get(VERIFY, headers=bearer(forge.sign_rs256(claims, pem, "not-our-key"))))
    assert_invalid_token(await client.get(VERIFY, headers=bearer(forge.sign_rs256(claims, pem, None))))


async def test_key_references_in_the_header_are_refused(client, auditor, db, settings):
    kid, pem = await forge.active_key(db)
    claims = forge.claims_for(auditor, settings)
    from jose import jwt

    token = jwt.encode(claims, pem, algorithm="RS256",
                       headers={"kid": kid, "typ": "at+jwt", "jku": "https://evil.example/jwks.json"})
    assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))


async def test_a_tampered_payload_is_refused(client, make_party):
    party = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read", "stats:read"])
    token = await party.token("stats:read")
    claims = forge.payload(token)
    assert claims["scope"] == "stats:read"
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 403
    claims["scope"] = "audit:read"
    assert_invalid_token(await client.get(VERIFY, headers=bearer(forge.with_payload(token, claims))))


async def test_a_disabled_clients_token_stops_working(client, auditor, make_party):
    admin = await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)
    token = await auditor.token()
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200
    r = await client.post(f"/v1/agencies/{auditor.agency}/clients/{auditor.client_id}/disable",
                          headers=await admin.headers())
    assert r.status_code == 200, r.text
    assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))
    # ... and it can get no new one.
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auditor.basic())
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_a_client_disabled_through_the_service_loses_its_token(client, auditor, db):
    token = await auditor.token()
    async with operator_unit(db, "test") as session:
        await agencies.set_client_disabled(session, auditor.agency, auditor.client_id, True)
    assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))


async def test_a_revoked_token_stops_working_at_once(client, auditor):
    token = await auditor.token()
    other = await auditor.token()
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200
    r = await client.post("/oauth/revoke", data={"token": token}, headers=auditor.basic())
    assert r.status_code == 200, r.text
    assert_invalid_token(await client.get(VERIFY, headers=bearer(token)))
    assert (await client.get(VERIFY, headers=bearer(other))).status_code == 200


async def test_another_client_cannot_revoke_my_token(client, auditor, make_party):
    stranger = await make_party("DP3A-KALBAR", "61", ["stats:read"])
    token = await auditor.token()
    r = await client.post("/oauth/revoke", data={"token": token}, headers=stranger.basic())
    assert r.status_code == 200  # RFC 7009: no hint whether the token exists
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200


async def test_missing_scope_is_403_naming_the_scope(client, make_party):
    party = await make_party("DP3A-KALBAR", "61", ["stats:read"])
    r = await client.get(VERIFY, headers=await party.headers())
    body = assert_problem(r, 403)
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="audit:read"'
    assert body["required_scope"] == "audit:read"


async def test_a_token_narrowed_to_fewer_scopes_cannot_use_the_others(client, make_party):
    party = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read", "stats:read"])
    r = await client.get(VERIFY, headers=await party.headers("stats:read"))
    assert_problem(r, 403)


# --- /oauth/token ----------------------------------------------------------------------------


async def test_client_secret_basic_and_post_both_work(client, auditor):
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auditor.basic())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "audit:read" and body["expires_in"] > 0
    assert r.headers["cache-control"] == "no-store"
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": auditor.client_id,
                                                "client_secret": auditor.client_secret})
    assert r.status_code == 200, r.text
    assert (await client.get(VERIFY, headers=bearer(r.json()["access_token"]))).status_code == 200


@pytest.mark.parametrize("how", ["basic", "post", "unknown-client", "no-credentials"])
async def test_wrong_credentials_are_invalid_client(client, auditor, how):
    data = {"grant_type": "client_credentials"}
    headers = {}
    if how == "basic":
        raw = f"{auditor.client_id}:wrong".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif how == "post":
        data |= {"client_id": auditor.client_id, "client_secret": auditor.client_secret + "x"}
    elif how == "unknown-client":
        data |= {"client_id": "nobody", "client_secret": auditor.client_secret}
    r = await client.post("/oauth/token", data=data, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "invalid_client"
    assert "access_token" not in r.text


@pytest.mark.parametrize("form", [
    pytest.param({"client_id": "same", "client_secret": "same"}, id="same-credentials-twice"),
    pytest.param({"client_id": "other", "client_secret": "other"}, id="other-credentials"),
    pytest.param({"client_secret": "same"}, id="secret-in-the-body"),
    pytest.param({"client_id": "same"}, id="id-in-the-body"),
])
async def test_basic_and_body_credentials_together_are_invalid_request(client, auditor, make_party, form):
    """RFC 6749 §2.3: a client uses one authentication method per request; with two, which
    identity to believe would be a guess."""
    other = await make_party("DP3A-KALBAR", "61", ["stats:read"])
    values = {"same": (auditor.client_id, auditor.client_secret), "other": (other.client_id, other.client_secret)}
    body = {k: values[v][0 if k == "client_id" else 1] for k, v in form.items()}
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", **body}, headers=auditor.basic())
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "invalid_request", "error_description": r.json()["error_description"]}
    assert r.headers["content-type"].startswith("application/json") and r.headers["cache-control"] == "no-store"
    token = await auditor.token()
    r = await client.post("/oauth/revoke", data={"token": token, **body}, headers=auditor.basic())
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200  # not revoked


async def test_other_grant_types_are_unsupported(client, auditor):
    r = await client.post("/oauth/token", headers=auditor.basic(),
                          data={"grant_type": "password", "username": "a", "password": "b"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert r.headers["content-type"].startswith("application/json")


async def test_a_scope_not_allowed_is_invalid_scope(client, auditor):
    for scope in ("admin", "audit:read admin", "no-such-scope"):
        r = await client.post("/oauth/token", headers=auditor.basic(),
                              data={"grant_type": "client_credentials", "scope": scope})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_scope"


async def test_omitted_scope_means_all_allowed(client, make_party):
    party = await make_party("BP3MI-KALBAR", "61", ["returnees:write", "notices:write", "referrals:write"])
    r = await client.post("/oauth/token", headers=party.basic(), data={"grant_type": "client_credentials"})
    assert r.json()["scope"] == "notices:write referrals:write returnees:write"
    assert set(forge.payload(r.json()["access_token"])["scope"].split()) == set(party.scopes)
    r = await client.post("/oauth/token", headers=party.basic(),
                          data={"grant_type": "client_credentials", "scope": "notices:write"})
    assert r.json()["scope"] == "notices:write"


async def test_the_tokens_claims_and_header(client, make_party, settings):
    party = await make_party("POLRES-BENGKAYANG", "61.07", ["referrals:read", "referrals:respond"],
                             kind=AgencyKind.police)
    before = int(time.time())
    token = await party.token()
    header, claims = forge.header(token), forge.payload(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert all("d" not in k and "p" not in k for k in jwks["keys"])  # public halves only
    assert claims["iss"] == settings.issuer and claims["aud"] == settings.audience
    assert claims["sub"] == claims["client_id"] == party.client_id
    assert claims["agency"] == "POLRES-BENGKAYANG" and claims["jurisdiction"] == "61.07"
    assert claims["scope"] == "referrals:read referrals:respond"
    assert before - 5 <= claims["iat"] <= int(time.time()) + 5
    assert claims["exp"] == claims["iat"] + settings.access_token_ttl
    assert claims["jti"] and claims["jti"] != forge.payload(await party.token())["jti"]


async def test_every_token_issued_is_an_audit_event(client, auditor, db):
    tokens = [await auditor.token() for _ in range(3)]
    r = await client.post("/oauth/token", headers=auditor.basic(),
                          data={"grant_type": "client_credentials", "scope": "admin"})
    assert r.status_code == 400
    async with db.read() as conn:
        rows = (await conn.execute(
            sa.select(AuditEvent.client_id, AuditEvent.outcome, AuditEvent.body)
            .where(AuditEvent.action == "token.issue").order_by(AuditEvent.seq)
        )).all()
    allowed = [r for r in rows if r.outcome == "allowed"]
    assert len(allowed) == 3
    assert all(r.client_id == auditor.client_id for r in allowed)
    jtis = {forge.payload(t)["jti"] for t in tokens}
    assert all(any(j in r.body for r in allowed) for j in jtis)
    denied = [r for r in rows if r.outcome == "denied"]
    assert len(denied) == 1 and "invalid_scope" in denied[0].body


async def test_oauth_errors_follow_rfc_6749(client, auditor):
    r = await client.post("/oauth/token", json={"grant_type": "client_credentials"}, headers=auditor.basic())
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post("/oauth/token", data={}, headers=auditor.basic())
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": "Basic !!!"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    assert set(r.json()) == {"error", "error_description"}
    assert r.headers["cache-control"] == "no-store"


# --- a token verified once: its signature is not checked again (api.core.tokens._VERIFIED) ------


def _rsa_pair() -> tuple[str, object]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jose import jwk

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return pem, jwk.construct(public, "RS256")


def _memo_claims(now: int, **changes: object) -> dict[str, object]:
    claims: dict[str, object] = {"iss": "https://sinergi.test", "aud": "sinergi", "sub": "c1", "client_id": "c1",
                                 "agency": "A", "jurisdiction": "61", "scope": "referrals:read", "iat": now,
                                 "nbf": now, "exp": now + 600, "jti": "j1"}
    return claims | changes


def test_a_verified_token_is_checked_against_its_times_at_every_use_and_only_for_its_key(monkeypatch):
    from datetime import UTC, datetime

    from api.core import tokens

    checked: list[str] = []
    decoded = tokens._decoded
    monkeypatch.setattr(tokens, "_decoded", lambda token, *a, **kw: checked.append(token) or decoded(token, *a, **kw))
    pem, key = _rsa_pair()
    other_pem, other_key = _rsa_pair()
    now = int(time.time())
    token = forge.sign_rs256(_memo_claims(now), pem, "k1")
    verify = {"issuer": "https://sinergi.test", "audience": "sinergi", "max_lifetime": 600}
    at = datetime.fromtimestamp(now, UTC)
    first = tokens.verify(token, key, now=at, **verify)
    assert tokens.verify(token, key, now=at, **verify) == first
    assert checked == [token]  # the signature checked once
    # its times are checked at each use: the same token, later, has expired
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(token, key, now=datetime.fromtimestamp(now + 600 + tokens.LEEWAY + 1, UTC), **verify)
    # a token verified with one key is never taken as verified for another (rotated, reloaded)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(token, other_key, now=at, **verify)
    # nor for another issuer or audience (other settings in the same process)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(token, key, now=at, **(verify | {"audience": "someone-else"}))
    # a token one character off is not the one verified
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(tampered, key, now=at, **verify)
    # a token of the other key verifies with it, and stays refused with the first
    other = forge.sign_rs256(_memo_claims(now, jti="j2"), other_pem, "k2")
    assert tokens.verify(other, other_key, now=at, **verify).jti == "j2"
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(other, key, now=at, **verify)


def test_the_verified_tokens_kept_are_bounded(monkeypatch):
    from datetime import UTC, datetime

    from api.core import tokens

    monkeypatch.setattr(tokens, "VERIFIED_MAX", 3)
    pem, key = _rsa_pair()
    now = int(time.time())
    verify = {"issuer": "https://sinergi.test", "audience": "sinergi", "max_lifetime": 600,
              "now": datetime.fromtimestamp(now, UTC)}
    for n in range(5):
        tokens.verify(forge.sign_rs256(_memo_claims(now, jti=f"bound-{n}"), pem, "k1"), key, **verify)
    assert len(tokens._VERIFIED) <= 3
