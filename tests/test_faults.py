"""A database fault: the caller gets a 503 it can retry, nothing half-done is left, and the
service recovers by itself when the database is back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api.core.db import sync_url
from tests.conftest import PG_ADMIN_URL, assert_problem


async def test_database_down_is_a_retryable_503(backend, database_url, client, make_party):
    if backend.name != "postgresql":
        pytest.skip("cutting connections needs a PostgreSQL server")
    operator = await make_party("SINERGI-OPERATOR", "61", ["admin"])
    headers = await operator.headers()
    name = make_url(database_url).database
    admin = sa.create_engine(sync_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")

    def cut(allow: bool) -> None:
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allow).lower()}'))
            if not allow:
                c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})

    body = {"code": "DINKES-BENGKAYANG", "name": "Dinas Kesehatan Bengkayang", "kind": "health",
            "jurisdiction": "61.07"}
    try:
        cut(allow=False)
        r = await client.post("/v1/agencies", json=body, headers=headers)
        problem = assert_problem(r, 503, "unavailable")
        assert r.headers["retry-after"] == "5" and "retry" in problem["detail"]
        assert (await client.get("/readyz")).status_code == 503
    finally:
        cut(allow=True)
        admin.dispose()
    # back: the same request succeeds (nothing was half-written before)
    r = await client.post("/v1/agencies", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert (await client.get("/readyz")).status_code == 200
