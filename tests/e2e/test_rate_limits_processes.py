"""Rate limits hold for a cluster: two real server processes on one PostgreSQL share the counters."""

from __future__ import annotations

import httpx

from models import AgencyKind
from tests.e2e.test_two_processes import postgresql_only, server  # noqa: F401 (the fixture)


async def test_two_servers_share_one_allowance_per_client_and_per_source(make_party, database_url, monkeypatch):
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    # an hour-long window: the few requests below never straddle a window boundary by much
    monkeypatch.setenv("SINERGI_RATE_WINDOW", "3600")
    monkeypatch.setenv("SINERGI_RATE_CLIENT", "6")
    monkeypatch.setenv("SINERGI_RATE_SOURCE", "4")
    with server(database_url) as one, server(database_url) as two:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(one + "/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(auditor.client_id, auditor.client_secret))
            assert r.status_code == 200, r.text
            headers = {"Authorization": "Bearer " + r.json()["access_token"]}
            statuses = [(await http.get(base + "/v1/audit", headers=headers, params={"limit": 1})).status_code
                        for _ in range(3) for base in (one, two)]
            assert statuses == [200] * 6  # six between them: the client's allowance is used up
            for base in (one, two):
                r = await http.get(base + "/v1/audit", headers=headers)
                assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
                assert r.headers["content-type"].startswith("application/problem+json")

            bad = {"Authorization": "Bearer not-a-token"}
            statuses = [(await http.get(base + "/v1/audit", headers=bad)).status_code
                        for _ in range(2) for base in (one, two)]
            assert statuses == [401] * 4
            for base in (one, two):
                assert (await http.get(base + "/v1/audit", headers=bad)).status_code == 429
