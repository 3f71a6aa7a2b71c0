"""What every request gets, whatever it asks: problem documents, request ids, body limits,
and one transaction that either commits before the reply or leaves only its failure behind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import HTTPException

from api.core import audit
from api.core.errors import Conflict
from api.http.session import SessionDep
from models import Agency, AgencyKind, AuditEvent
from tests.conftest import assert_problem


@pytest.fixture
async def admin(make_party):
    return await make_party("OPERATOR", "61", ["admin"], kind=AgencyKind.operator)


async def test_validation_errors_name_the_fields(client, admin):
    r = await client.post("/v1/agencies", headers=await admin.headers(),
                          json={"code": "polres bengkayang", "name": "Polres", "jurisdiction": "61.99",
                                "color": "blue"})
    body = assert_problem(r, 422, "validation-error")
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"code", "jurisdiction", "color"}
    assert "61.99" in fields["jurisdiction"] and not fields["jurisdiction"].startswith("Value error")


async def test_validation_errors_of_list_items_carry_the_index(client, admin):
    r = await client.post("/v1/agencies", headers=await admin.headers(),
                          json={"code": "POLRES-BENGKAYANG", "name": "Polres", "jurisdiction": "61.07"})
    assert r.status_code == 201
    r = await client.post("/v1/agencies/POLRES-BENGKAYANG/clients", headers=await admin.headers(),
                          json={"scopes": ["referrals:read", 7]})
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["scopes.1"]


async def test_query_and_body_errors(client, admin, make_party):
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"])
    r = await client.get("/v1/audit", headers=await auditor.headers(), params={"limit": 0})
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["query.limit"]
    r = await client.post("/v1/agencies", headers={**await admin.headers(), "Content-Type": "application/json"},
                          content=b"{not json")
    assert_problem(r, 422)
    r = await client.post("/v1/agencies", headers=await admin.headers())
    body = assert_problem(r, 422)
    assert body["errors"][0]["field"] == "body"


async def test_a_json_syntax_error_names_the_body_and_where_it_broke(client, admin, make_party):
    """Not a character offset posing as a field name: the field is ``body``, the message gives
    the line and column (on a plain route and on the batch route, which parses with orjson)."""
    pusher = await make_party("BP3MI-KALBAR", "61", ["returnees:write"], kind=AgencyKind.migrant_protection)
    cases = (("/v1/agencies", admin), ("/v1/returnees/batch", pusher))
    for path, who in cases:
        r = await client.post(path, headers={**await who.headers(), "Content-Type": "application/json"},
                              content=b'{\n  "records": [\n    {"source_ref": "KB-1",, "nik": "6107"}\n  ]\n}')
        body = assert_problem(r, 422, "validation-error")
        assert len(body["errors"]) == 1, body
        error = body["errors"][0]
        assert error["field"] == "body", body
        assert "line 3, column 27" in error["message"], body
        assert not any(ch.isdigit() for ch in error["field"])


async def test_unknown_route_and_method(client):
    body = assert_problem(await client.get("/v1/nothing-here"), 404, "not-found")
    assert body["instance"] == "/v1/nothing-here"
    r = await client.get("/oauth/token")
    assert_problem(r, 405)
    assert "POST" in r.headers["allow"]
    assert_problem(await client.delete("/v1/agencies"), 405)


async def test_the_server_makes_every_request_id_and_keeps_the_callers_beside_it(client):
    r = await client.get("/healthz", headers={"X-Request-ID": "bp3mi-batch-0042"})
    ours = r.headers["x-request-id"]
    assert ours != "bp3mi-batch-0042" and len(ours) == 32
    assert r.headers["x-caller-request-id"] == "bp3mi-batch-0042"
    a, b = (await client.get("/healthz")).headers["x-request-id"], (await client.get("/healthz")).headers["x-request-id"]
    assert a and b and a != b
    # Another request's id sent again is only the caller's correlation id: ours is new.
    again = await client.get("/healthz", headers={"X-Request-ID": ours})
    assert again.headers["x-request-id"] != ours and again.headers["x-caller-request-id"] == ours
    r = await client.get("/v1/nothing", headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 404 and r.headers["x-caller-request-id"] == "abc-123"
    # Something that cannot be a correlation id (it would end up in logs and the audit chain)
    # is not used at all.
    for bad in ("a b\tc", "x" * 129, "naïve"):
        r = await client.get("/healthz", headers={"X-Request-ID": bad.encode()})
        assert r.headers["x-request-id"] and "x-caller-request-id" not in r.headers


async def test_the_request_id_is_in_the_audit_log(client, make_party):
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"])
    headers = await auditor.headers(**{"X-Request-ID": "req-verify-1"})
    ours = (await client.get("/v1/audit/verify", headers=headers)).headers["x-request-id"]
    r = await client.get("/v1/audit", headers=headers, params={"action": "audit.verify"})
    entry = r.json()["items"][0]
    assert entry["request_id"] == ours
    assert entry["detail"]["caller_request_id"] == "req-verify-1"


BIG = 1024 * 1024 + 1


async def test_a_body_over_one_mebibyte_is_413(client, admin):
    headers = {**await admin.headers(), "Content-Type": "application/json"}
    payload = b'{"code": "X", "name": "' + b"x" * BIG + b'", "jurisdiction": "61"}'
    r = await client.post("/v1/agencies", headers=headers, content=payload)
    assert_problem(r, 413, "payload-too-large")
    assert r.headers["x-request-id"]


async def test_a_chunked_body_over_one_mebibyte_is_413(client, admin):
    headers = {**await admin.headers(), "Content-Type": "application/json"}

    async def chunks():
        yield b'{"code": "X", "name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'", "jurisdiction": "61"}'

    r = await client.post("/v1/agencies", headers=headers, content=chunks())
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, "payload-too-large")

    async def form_chunks():
        yield b"grant_type=client_credentials&scope="
        for _ in range(20):
            yield b"a" * 65536

    r = await client.post("/oauth/token", content=form_chunks(),
                          headers={**admin.basic(), "Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(r, 413, "payload-too-large")


async def test_a_body_of_exactly_one_mebibyte_is_read(client, admin):
    headers = {**await admin.headers(), "Content-Type": "application/json"}
    prefix, suffix = b'{"code": "X", "name": "', b'", "jurisdiction": "61"}'
    payload = prefix + b"x" * (1024 * 1024 - len(prefix) - len(suffix)) + suffix
    r = await client.post("/v1/agencies", headers=headers, content=payload)
    assert_problem(r, 422)  # read and validated (the name is too long), not refused for size


# --- failures and transactions ---------------------------------------------------------------


def _count(rows: list, **match) -> int:
    return sum(all(getattr(r, k) == v for k, v in match.items()) for r in rows)


async def _audit_rows(db, request_id: str):
    async with db.read() as conn:
        return (await conn.execute(
            sa.select(AuditEvent.action, AuditEvent.outcome, AuditEvent.body, AuditEvent.request_id)
            .where(AuditEvent.request_id == request_id)
        )).all()


async def _agency_exists(db, code: str) -> bool:
    async with db.read() as conn:
        return (await conn.execute(sa.select(Agency.code).where(Agency.code == code))).first() is not None


def _add_test_routes(app) -> None:
    async def write_then(session: SessionDep, kind: str) -> dict:
        session.add(Agency(code="GHOST", name="Ghost", kind=AgencyKind.other, jurisdiction="61.07"))
        await session.flush()
        audit.record(session, "ghost.create", resource_type="agency", resource_id="GHOST")
        if kind == "crash":
            raise RuntimeError("secret internals: password=hunter2")
        if kind == "conflict":
            raise Conflict("It clashes")
        if kind == "http":
            raise HTTPException(409, "It clashes")
        return {"created": "GHOST"}

    app.add_api_route("/test/write/{kind}", write_then, methods=["POST"], name="ghost.create",
                      include_in_schema=False)  # plumbing under test, not an operation of the service


async def test_an_unexpected_error_is_a_bare_500(app, client, db):
    _add_test_routes(app)
    r = await client.post("/test/write/crash", headers={"X-Request-ID": "crash-1"})
    body = assert_problem(r, 500, "internal-error")
    assert "hunter2" not in r.text and "RuntimeError" not in r.text and "File " not in r.text
    assert r.headers["x-request-id"] and r.headers["x-caller-request-id"] == "crash-1"
    assert body["status"] == 500


@pytest.mark.parametrize("kind,status", [("crash", 500), ("conflict", 409), ("http", 409)])
async def test_a_request_failing_halfway_writes_only_its_failure(app, client, db, kind, status):
    _add_test_routes(app)
    r = await client.post(f"/test/write/{kind}")
    assert_problem(r, status)
    rid = r.headers["x-request-id"]
    assert not await _agency_exists(db, "GHOST")
    rows = await _audit_rows(db, rid)
    assert len(rows) == 1, rows
    assert rows[0].action == "ghost.create" and rows[0].outcome == "failed"
    assert f'"status":{status}' in rows[0].body
    assert '"GHOST"' in rows[0].body  # what the request was about is still named


async def test_a_duplicate_agency_leaves_only_its_failure(client, admin, db):
    headers = await admin.headers()
    data = {"code": "POLRES-BENGKAYANG", "name": "Polres Bengkayang", "jurisdiction": "61.07"}
    assert (await client.post("/v1/agencies", headers=headers, json=data)).status_code == 201
    r = await client.post("/v1/agencies", headers=headers, json=data | {"name": "Another name"})
    assert_problem(r, 409, "conflict")
    rows = await _audit_rows(db, r.headers["x-request-id"])
    assert [(x.action, x.outcome) for x in rows] == [("agency.create", "failed")]
    async with db.read() as conn:
        name = (await conn.execute(sa.select(Agency.name).where(Agency.code == "POLRES-BENGKAYANG"))).scalar()
    assert name == "Polres Bengkayang"


async def test_a_success_is_committed_before_the_reply(app, client, db):
    _add_test_routes(app)
    r = await client.post("/test/write/ok")
    assert r.status_code == 200, r.text
    # Read at once, on another connection: the row and its audit entry are there.
    assert await _agency_exists(db, "GHOST")
    rows = await _audit_rows(db, r.headers["x-request-id"])
    assert [(x.action, x.outcome) for x in rows] == [("ghost.create", "allowed")]


async def test_the_commit_happens_before_the_reply_starts(app, client, db):
    # Look at the database at the moment the response starts, from another connection: over
    # ASGI the whole app has finished before the client gets the reply, so checking after
    # the reply would not tell.
    _add_test_routes(app)
    seen: list[bool] = []
    inner = app.middleware_stack or app.build_middleware_stack()

    async def probe(scope, receive, send):
        async def watching_send(message):
            if message["type"] == "http.response.start" and scope["path"].startswith("/test/write"):
                seen.append(await _agency_exists(db, "GHOST"))
            await send(message)

        await inner(scope, receive, watching_send)

    app.middleware_stack = probe
    try:
        r = await client.post("/test/write/ok")
    finally:
        app.middleware_stack = inner
    assert r.status_code == 200
    assert seen == [True]


async def test_an_admin_create_is_visible_right_after_the_reply(client, admin):
    headers = await admin.headers()
    r = await client.post("/v1/agencies", headers=headers,
                          json={"code": "DINSOS-BENGKAYANG", "name": "Dinsos", "jurisdiction": "61.07"})
    assert r.status_code == 201
    r = await client.post("/v1/agencies/DINSOS-BENGKAYANG/clients", headers=headers, json={"scopes": "notices:read"})
    assert r.status_code == 201, r.text
    created = r.json()
    r = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(created["client_id"], created["client_secret"]))
    assert r.status_code == 200, r.text


# --- operations ------------------------------------------------------------------------------


async def test_metrics_and_readiness(client):
    await client.get("/healthz")
    await client.get("/v1/nothing-here")
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "sinergi_http_requests_total" in r.text
    assert 'route="/healthz"' in r.text and 'status="404"' in r.text
    assert "sinergi_http_request_duration_seconds_bucket" in r.text
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    from api.core.migrate import head_revision

    assert r.json() == {"status": "ok", "database": "ok", "migration": head_revision()}


async def test_readyz_is_503_when_the_schema_is_behind(client, database_url):
    from api.core.db import sync_url

    eng = sa.create_engine(sync_url(database_url))
    with eng.begin() as c:
        old = c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'older'"))
    try:
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["migration"] == "older"
    finally:
        with eng.begin() as c:
            c.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": old})
        eng.dispose()


async def test_a_value_the_database_refuses_is_a_422_not_a_500(app, client, db, backend, caplog):
    """Validation is the first line; should a value the database cannot store get past it
    (PostgreSQL refuses NUL in text), the reply is still a 4xx that changed nothing, it is
    audited, and the log does not quote the value."""
    if backend.name != "postgresql":
        pytest.skip("SQLite stores NUL in text")

    async def store(session: SessionDep) -> dict:
        session.add(Agency(code="GHOST", name="Siti\x00Aminah", kind=AgencyKind.other, jurisdiction="61.07"))
        await session.flush()
        return {}

    app.add_api_route("/test/store", store, methods=["POST"], name="ghost.store",
                      include_in_schema=False)  # plumbing under test, not an operation of the service
    r = await client.post("/test/store")
    assert_problem(r, 422, "validation-error")
    assert not await _agency_exists(db, "GHOST")
    rows = await _audit_rows(db, r.headers["x-request-id"])
    assert [(x.action, x.outcome) for x in rows] == [("ghost.store", "failed")] and '"status":422' in rows[0].body
    assert "Siti" not in caplog.text


async def test_replies_of_the_api_are_not_kept_by_caches(client, admin):
    """Replies hold personal data, secrets shown once (a client's secret here) and agencies' own
    records: every reply of /v1 and /oauth says ``Cache-Control: no-store``, problems included;
    the public signing keys and metadata keep the caching their routes give them."""
    r = await client.post("/v1/agencies", headers=await admin.headers(),
                          json={"code": "POLRES-BENGKAYANG", "name": "Polres", "jurisdiction": "61.07"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    r = await client.post("/v1/agencies/POLRES-BENGKAYANG/clients", headers=await admin.headers(),
                          json={"scopes": ["referrals:read"]})
    assert r.status_code == 201 and "client_secret" in r.json() and r.headers["cache-control"] == "no-store"
    token = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(admin.client_id, admin.client_secret))
    assert token.headers["cache-control"] == "no-store"
    problem = await client.get("/v1/agencies", headers={"Authorization": "Bearer nonsense"})
    assert problem.status_code == 401 and problem.headers["cache-control"] == "no-store"
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200 and jwks.headers["cache-control"].startswith("public")
