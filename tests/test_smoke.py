from __future__ import annotations

from tests.conftest import assert_problem


async def test_health_and_ready(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["database"] == "ok"


async def test_token_and_scoped_call(make_party, client):
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"])
    r = await client.get("/v1/audit/verify", headers=await auditor.headers())
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    assert r.headers["x-request-id"]
    r = await client.get("/v1/agencies", headers=await auditor.headers())
    body = assert_problem(r, 403, "insufficient-scope")
    assert r.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'
    assert body["required_scope"] == "admin"


async def test_openapi_document_names_the_scope_of_each_operation(client):
    spec = (await client.get("/openapi.json")).json()
    flow = spec["components"]["securitySchemes"]["client_credentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token" and "pii:read" in flow["scopes"]
    assert spec["paths"]["/v1/returnees/batch"]["post"]["security"] == [{"client_credentials": ["returnees:write"]}]
    # either scope will do: two alternative requirement objects, not one holding both
    assert spec["paths"]["/v1/referrals/{id}/transitions"]["post"]["security"] == [
        {"client_credentials": ["referrals:respond"]}, {"client_credentials": ["referrals:write"]}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
