"""What a hostile or broken caller sends cannot break the service or flood its audit chain.

Each request below is garbage of one kind (NUL in a query, a path or a body; an over-long
client id or path id; a forged X-Forwarded-For; another request's X-Request-ID). For each:
the reply is a 4xx (problem+json, or OAuth's own error format at the token endpoint), an audit
entry for exactly that request exists, it is small whatever was sent, the chain still
verifies, and no log line holds what the request carried.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.core.settings import Settings
from models import AgencyKind, AuditEvent, AuditSubject
from tests.conftest import assert_problem
from tests.test_referrals import referral_body

# What one garbage request may add to the chain, whatever it sent (body and columns).
MAX_ENTRY_BYTES = 2048
MIB = 1024 * 1024


@pytest.fixture
async def auditor(make_party):
    return await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)


@pytest.fixture
async def everyone(make_party):
    """A caller for each kind of route the garbage is sent to."""
    return {
        "admin": await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator),
        "bp3mi": await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read notices:read notices:ack returnees:read "
                                  "stats:read", kind=AgencyKind.migrant_protection),
        "polres": await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond",
                                   kind=AgencyKind.police),
    }


async def entries_of(db, request_id: str) -> list[dict[str, Any]]:
    """The audit entries of one request (by the id the server gave it), with their sizes."""
    async with db.sessionmaker() as session:
        rows = (await session.execute(sa.select(AuditEvent).where(AuditEvent.request_id == request_id))).scalars().all()
        out = []
        for e in rows:
            subjects = (await session.execute(
                sa.select(AuditSubject.resource_type, AuditSubject.resource_id).where(AuditSubject.event_id == e.id)
            )).all()
            size = len(e.body.encode()) + sum(len(str(getattr(e, c) or "").encode()) for c in (
                "client_id", "agency", "action", "resource_type", "resource_id", "outcome", "request_id"))
            size += sum(len(t) + len(i) for t, i in subjects)
            out.append({"row": e, "doc": orjson.loads(e.body), "size": size, "subjects": subjects})
    return out


async def the_entry(db, r: httpx.Response) -> dict[str, Any]:
    """The one entry of reply ``r``'s request; it is small."""
    found = await entries_of(db, r.headers["x-request-id"])
    assert len(found) == 1, found
    entry = found[0]
    assert entry["size"] <= MAX_ENTRY_BYTES, (entry["size"], entry["doc"])
    return entry


async def chain_verifies(client, auditor) -> None:
    r = await client.get("/v1/audit/verify", headers=await auditor.headers())
    assert r.status_code == 200 and r.json()["ok"] is True, r.text


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the service logged: messages, their extra fields, exception texts (the
    test's own HTTP client, which logs the URLs it sends, is left out)."""
    parts = []
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue
        parts.append(record.getMessage())
        parts.extend(str(v) for k, v in vars(record).items() if k not in ("msg", "args", "exc_info"))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def no_secrets_logged(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    text = logged(caplog)
    for value in values:
        assert value not in text, value[:80]
    assert "\x00" not in text and "[parameters:" not in text


# --- NUL and other control characters -------------------------------------------------------


QUERY_GARBAGE = [
    ("auditor", "/v1/audit", {"agency": "\x00"}),
    ("auditor", "/v1/audit", {"actor": "x\x00y"}),
    ("auditor", "/v1/audit", {"resource_id": "\x1b[31m"}),
    ("bp3mi", "/v1/stats/returnees", {"district": "\x00"}),
    ("bp3mi", "/v1/stats/referrals", {"to_agency": "\x00"}),
    ("bp3mi", "/v1/notices", {"district": "61.07\x00"}),
    ("bp3mi", "/v1/returnees", {"district": "\x00"}),
    ("bp3mi", "/v1/referrals", {"cursor": "\x00"}),
    ("bp3mi", "/v1/referrals", {"\x00": "1"}),
]


@pytest.mark.parametrize("who,path,params", QUERY_GARBAGE)
async def test_nul_in_a_query_is_a_400_and_is_audited(client, db, auditor, everyone, caplog, who, path, params):
    caplog.set_level(logging.DEBUG)
    party = auditor if who == "auditor" else everyone[who]
    r = await client.get(path, params=params, headers=await party.headers())
    body = assert_problem(r, 400, "bad-input")
    assert body["errors"] and all(e["field"].startswith("query.") for e in body["errors"])
    entry = await the_entry(db, r)
    assert entry["row"].outcome == "failed" and entry["row"].client_id == party.client_id
    assert entry["doc"]["detail"]["status"] == 400 and entry["doc"]["detail"]["problem"] == "bad-input"
    no_secrets_logged(caplog)
    await chain_verifies(client, auditor)


@pytest.mark.parametrize("path", ["/v1/notices/%00", "/v1/referrals/%00", "/v1/returnees/%01abc",
                                  "/v1/agencies/%00/clients"])
async def test_nul_in_a_path_is_a_400_and_is_audited(client, db, auditor, everyone, caplog, path):
    caplog.set_level(logging.DEBUG)
    party = everyone["admin"] if path.startswith("/v1/agencies") else everyone["bp3mi"]
    if path.startswith("/v1/agencies"):
        r = await client.post(path, json={"scopes": ["stats:read"]}, headers=await party.headers())
    else:
        r = await client.get(path, headers=await party.headers())
    body = assert_problem(r, 400, "bad-input")
    assert [e["field"].split(".")[0] for e in body["errors"]] == ["path"]
    entry = await the_entry(db, r)
    claimed = entry["doc"]["detail"]["claimed_path"]
    assert all("\x00" not in v and "\x01" not in v for v in claimed.values())
    assert any("\\u0000" in v or "\\u0001" in v for v in claimed.values())  # shown, escaped
    assert entry["row"].resource_id is None and entry["subjects"] == []
    no_secrets_logged(caplog)
    await chain_verifies(client, auditor)


@pytest.mark.parametrize("field,value", [("note", "Deported\x00via Aruk"), ("legal_basis", "UU-21-2007:51\x00"),
                                         ("subject.full_name", "Rina\x00"), ("note", "\x07bell"),
                                         ("note", "\ud800"), ("subject.full_name", "R" * 5000)])
async def test_a_bad_string_in_a_json_body_is_a_422_and_is_audited(client, db, auditor, everyone, caplog,
                                                                    field, value):
    caplog.set_level(logging.DEBUG)
    sender = everyone["bp3mi"]
    body = referral_body()
    target = body
    *parents, last = field.split(".")
    for p in parents:
        target = target[p]
    target[last] = value
    # \ud800 cannot be encoded by httpx's json=: send the escape as JSON text, as a caller would
    payload = orjson.dumps(body, default=str) if value != "\ud800" else orjson.dumps(body | {"note": "X"}).replace(
        b'"X"', b'"\\ud800"')
    r = await client.post("/v1/referrals", content=payload,
                          headers={**await sender.headers(), "Content-Type": "application/json"})
    problem = assert_problem(r, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    entry = await the_entry(db, r)
    assert entry["row"].outcome == "failed" and entry["row"].client_id == sender.client_id
    assert entry["doc"]["detail"]["fields"] == [field]
    async with db.read() as conn:  # nothing was written
        assert (await conn.execute(sa.text("SELECT count(*) FROM referral"))).scalar() == 0
    no_secrets_logged(caplog, "Rina", "1998-02-03", "R" * 300)
    await chain_verifies(client, auditor)


async def test_notes_may_hold_newlines_and_tabs(client, everyone):
    r = await client.post("/v1/referrals", json=referral_body(note="Line one.\n\tLine two.\r\n"),
                          headers=await everyone["bp3mi"].headers())
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "Line one.\n\tLine two.\r\n"


async def test_unauthenticated_garbage_is_a_401_first(client, db, auditor):
    r = await client.get("/v1/audit", params={"agency": "\x00"}, headers={"Authorization": "Bearer nope"})
    assert_problem(r, 401)
    entry = await the_entry(db, r)
    assert entry["row"].outcome == "denied" and entry["row"].client_id is None
    await chain_verifies(client, auditor)


async def test_a_token_naming_a_garbage_key_is_a_401(client, db, auditor):
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"at+jwt","kid":"\\u0000' + b"k" * 5000 + b'"}')
    token = header.rstrip(b"=").decode() + ".e30.c2ln"
    r = await client.get("/v1/audit", headers={"Authorization": f"Bearer {token}"})
    assert_problem(r, 401)
    await the_entry(db, r)
    cp = "eyJhbGciOiJSUzI1NiIsInR5cCI6InNpbmVyZ2ktYXVkaXQtY2hlY2twb2ludCtqd3QiLCJraWQiOiJcdTAwMDAifQ.e30.c2ln"
    r = await client.get("/v1/audit/verify", params={"checkpoint": cp}, headers=await auditor.headers())
    assert_problem(r, 422, "bad-checkpoint")
    await chain_verifies(client, auditor)


# --- claimed client ids at the token endpoint -----------------------------------------------


@pytest.mark.parametrize("length", [65, 4096])
async def test_an_unknown_long_client_id_is_invalid_client_and_bounded(client, db, auditor, caplog, length):
    caplog.set_level(logging.DEBUG)
    claimed = "c" * length
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": claimed,
                                                "client_secret": "s"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    entry = await the_entry(db, r)
    row, detail = entry["row"], entry["doc"]["detail"]
    assert row.action == "token.issue" and row.outcome == "denied"
    assert row.client_id is None and row.resource_id is None and entry["subjects"] == []
    assert detail["claimed_client_id"].startswith("c" * 64) and f"{length} chars" in detail["claimed_client_id"]
    no_secrets_logged(caplog, claimed)
    await chain_verifies(client, auditor)


async def test_a_mebibyte_client_id_in_the_form_is_refused_and_bounded(client, db, auditor, caplog):
    caplog.set_level(logging.DEBUG)
    claimed = "c" * (MIB - 100)
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": claimed,
                                                "client_secret": "s"})
    body = assert_problem(r, 400, "bad-input")
    assert body["error"] == "invalid_request" and [e["field"] for e in body["errors"]] == ["client_id"]
    entry = await the_entry(db, r)
    assert entry["row"].action == "token.issue" and entry["row"].outcome == "failed"
    no_secrets_logged(caplog, "c" * 5000)
    await chain_verifies(client, auditor)


async def test_a_mebibyte_client_id_in_basic_credentials_is_bounded(client, db, auditor, caplog):
    caplog.set_level(logging.DEBUG)
    claimed = "c" * MIB
    basic = base64.b64encode(f"{claimed}:secret".encode()).decode()
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    entry = await the_entry(db, r)
    assert entry["row"].client_id is None and f"{MIB} chars" in entry["doc"]["detail"]["claimed_client_id"]
    no_secrets_logged(caplog, "c" * 5000)
    await chain_verifies(client, auditor)


@pytest.mark.parametrize("field", ["client_id", "grant_type", "scope"])
async def test_nul_in_the_token_form_is_invalid_request(client, db, auditor, field):
    data = {"grant_type": "client_credentials", "client_id": "someone", "client_secret": "s", field: "a\x00b"}
    r = await client.post("/oauth/token", data=data)
    body = assert_problem(r, 400, "bad-input")
    assert body["error"] == "invalid_request"
    await the_entry(db, r)
    # ...and in Basic credentials, which the form screen does not see: not looked up, 401
    basic = base64.b64encode(b"\x00evil:secret").decode()
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert "\\u0000" in (await the_entry(db, r))["doc"]["detail"]["claimed_client_id"]
    await chain_verifies(client, auditor)


async def test_a_proven_client_is_in_the_column_a_claimed_one_is_not(client, db, everyone):
    admin = everyone["admin"]
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(admin.client_id, "wrong"))
    assert r.status_code == 401
    denied = await the_entry(db, r)
    # the client exists: the failed login is about it, but the caller is not proven to be it
    assert denied["row"].client_id is None and denied["row"].resource_id == admin.client_id
    assert denied["doc"]["detail"]["claimed_client_id"] == admin.client_id
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(admin.client_id, admin.client_secret))
    issued = await the_entry(db, r)
    assert issued["row"].client_id == admin.client_id and "claimed_client_id" not in issued["doc"]["detail"]


# --- over-long path values ------------------------------------------------------------------


async def test_an_8k_path_id_is_refused_and_bounded(client, db, auditor, everyone, caplog):
    caplog.set_level(logging.DEBUG)
    long_id = "n" * 8192
    for path in (f"/v1/notices/{long_id}", f"/v1/notices/{long_id}/acknowledge"):
        method = client.get if path.count("/") == 3 else client.post
        r = await method(path, headers=await everyone["bp3mi"].headers())
        assert_problem(r, 400, "bad-input")
        entry = await the_entry(db, r)
        assert entry["row"].resource_id is None and entry["subjects"] == []
        assert "8192 chars" in entry["doc"]["detail"]["claimed_path"]["id"]
    # an admin path value of a plausible length but no such client: 404, the id kept as the resource
    admin = everyone["admin"]
    r = await client.post(f"/v1/agencies/OPERATOR/clients/{'k' * 100}/disable", headers=await admin.headers())
    assert_problem(r, 404)
    entry = await the_entry(db, r)
    assert entry["row"].outcome == "denied"
    no_secrets_logged(caplog, long_id)
    await chain_verifies(client, auditor)


# --- request ids and addresses --------------------------------------------------------------


async def test_a_callers_request_id_never_replaces_the_servers(client, db, auditor):
    headers = await auditor.headers()
    first = await client.get("/v1/audit/checkpoint", headers=headers)
    theirs = first.headers["x-request-id"]
    # A second request claiming the first one's id: it gets its own, and the claim is kept beside it.
    second = await client.get("/v1/audit/checkpoint", headers={**headers, "X-Request-ID": theirs})
    assert second.headers["x-request-id"] != theirs and second.headers["x-caller-request-id"] == theirs
    assert len(await entries_of(db, theirs)) == 1  # the first request's entry stays the only one with that id
    entry = await the_entry(db, second)
    assert entry["doc"]["detail"]["caller_request_id"] == theirs
    # one that cannot be a correlation id is not kept at all
    third = await client.get("/v1/audit/checkpoint", headers={**headers, "X-Request-ID": "x" * 5000})
    assert "caller_request_id" not in (await the_entry(db, third))["doc"]["detail"]
    await chain_verifies(client, auditor)


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(client, db, auditor):
    forged = ",".join(["203.0.113.9"] * 400) + "," + "z" * 6000
    r = await client.get("/v1/audit/checkpoint", headers={**await auditor.headers(), "X-Forwarded-For": forged})
    assert r.status_code == 200
    entry = await the_entry(db, r)
    assert entry["doc"]["detail"]["ip"] == "127.0.0.1"  # the socket's peer (httpx's ASGI transport)
    await chain_verifies(client, auditor)


@pytest.fixture
async def behind_a_proxy(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with 127.0.0.1 (the test transport's peer) and 10.0.0.0/8 as trusted proxies."""
    app = create_app(settings.model_copy(update={"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}),
                     configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.mark.parametrize("forwarded,seen", [
    ("203.0.113.7", "203.0.113.7"),
    ("198.51.100.1, 203.0.113.7, 10.1.2.3", "203.0.113.7"),  # through two trusted hops
    ("203.0.113.7, not-an-address", "127.0.0.1"),  # garbage from the proxy: its own address stands
    ("z" * 6000, "127.0.0.1"),
    ("2001:DB8::0:1", "2001:db8::1"),  # normalised
])
async def test_x_forwarded_for_from_a_trusted_proxy(behind_a_proxy, db, make_party, forwarded, seen):
    c = behind_a_proxy
    party = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    party.http = c
    r = await c.get("/v1/audit/checkpoint", headers={**await party.headers(), "X-Forwarded-For": forwarded})
    assert r.status_code == 200, r.text
    assert (await the_entry(db, r))["doc"]["detail"]["ip"] == seen


def test_trusted_proxies_from_the_environment(monkeypatch):
    monkeypatch.setenv("SINERGI_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")
    assert Settings(mode="development").trusted_proxies == ["10.0.0.5/32", "10.1.0.0/16"]
    monkeypatch.setenv("SINERGI_TRUSTED_PROXIES", "not-an-address")
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        Settings(mode="development")
    monkeypatch.delenv("SINERGI_TRUSTED_PROXIES")
    assert Settings(mode="development").trusted_proxies == []


# --- requests refused before any unit of work ---------------------------------------------


async def test_requests_refused_before_the_route_are_audited_too(client, db, auditor, everyone):
    admin = everyone["admin"]
    headers = {**await admin.headers(), "Content-Type": "application/json"}
    malformed = await client.post("/v1/agencies", content=b'{"code": "X\x00', headers=headers)
    assert_problem(malformed, 422)
    too_large = await client.post("/v1/agencies", content=b"x" * (MIB + 1), headers=headers)
    assert_problem(too_large, 413, "payload-too-large")
    for r, status, slug in ((malformed, 422, "validation-error"), (too_large, 413, "payload-too-large")):
        entry = await the_entry(db, r)
        assert entry["row"].action == "agency.create" and entry["row"].outcome == "failed", (status, entry["doc"])
        assert entry["doc"]["detail"]["status"] == status and entry["doc"]["detail"]["problem"] == slug
    # a path that is no route of the service is about nothing: not audited
    nothing = await client.get("/v1/nothing-here")
    assert nothing.status_code == 404 and await entries_of(db, nothing.headers["x-request-id"]) == []
    await chain_verifies(client, auditor)


# --- the log never holds what a failed statement was given -------------------------------


async def test_a_failed_statement_logs_no_values(db, caplog):
    """The database refuses a row holding a victim's name and birth date; neither the
    exception's text nor any log line carries them, and the exception keeps its class."""
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("sinergi.test")
    async with db.engine.connect() as conn:
        await conn.execute(sa.text("CREATE TEMPORARY TABLE victim (name TEXT NOT NULL, born TEXT CHECK (length(born) = 10),"
                                   " ref TEXT UNIQUE)"))
        await conn.execute(sa.text("INSERT INTO victim VALUES ('Siti Aminah', '2010-04-01', 'R-1')"))
        for params in ({"n": "Siti Aminah", "b": "2010-4-1", "r": "R-2"}, {"n": "Nur Aini", "b": "2011-02-03", "r": "R-1"}):
            with pytest.raises(sa.exc.IntegrityError) as caught:
                async with conn.begin_nested():
                    await conn.execute(sa.text("INSERT INTO victim VALUES (:n, :b, :r)"), params)
            log.exception("write failed", exc_info=caught.value)
            text = str(caught.value)
            for value in params.values():
                assert value not in text, text
        await conn.rollback()
    no_secrets_logged(caplog, "Siti Aminah", "Nur Aini", "2010-4-1", "2011-02-03", "R-1", "R-2")
    assert "write failed" in caplog.text and "hidden" in caplog.text


# --- what the service itself records from input is bounded too ------------------------------


async def test_filters_and_requested_scopes_are_recorded_bounded(client, db, auditor, everyone):
    long_actor = "a" * 4000
    r = await client.get("/v1/audit", params={"actor": long_actor, "agency": "b" * 4000},
                         headers=await auditor.headers())
    assert r.status_code == 200 and r.json()["items"] == []
    filters = (await the_entry(db, r))["doc"]["detail"]["filters"]
    assert filters["actor"].startswith("a" * 256) and "4000 chars" in filters["actor"]
    # a scope parameter of 4,000 characters, 1,000 made-up scopes: denied, and the entry stays small
    admin = everyone["admin"]
    scope = " ".join(f"s{i:03}" for i in range(1000))[:4000]
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": scope},
                          auth=(admin.client_id, admin.client_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    detail = (await the_entry(db, r))["doc"]["detail"]
    assert len(detail["requested"]) == 33 and detail["requested"][-1].startswith("…[")
    await chain_verifies(client, auditor)


def test_the_client_address_walk():
    from ipaddress import ip_network

    from api.http.middleware import client_address

    proxies = (ip_network("10.0.0.0/8"),)
    assert client_address("10.0.0.1", "203.0.113.7", proxies) == "203.0.113.7"
    assert client_address("198.51.100.2", "203.0.113.7", proxies) == "198.51.100.2"  # not a proxy of ours
    assert client_address("10.0.0.1", "10.0.0.2, 10.0.0.3", proxies) == "10.0.0.2"  # all trusted: the first
    # an over-long header is read from its right end only, and the address cut there is not used
    assert client_address("10.0.0.1", "203.0.113.77" + ",10.0.0.9" * 300, proxies) == "10.0.0.9"
    assert client_address(None, "203.0.113.7", proxies) is None
    assert client_address("testclient", None, proxies) == "testclient"
    assert client_address("x" * 100, None, proxies) is None
