"""Two real server processes on one PostgreSQL: stateless, one key set, one audit chain."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.core.db import sync_url
from models import AgencyKind
from tests.live import serve


@pytest.fixture(autouse=True)
def postgresql_only(backend):
    if backend.name != "postgresql":
        pytest.skip("several server processes need PostgreSQL")


@contextmanager
def server(database_url: str, *command: str) -> Iterator[str]:
    """A server process on ``database_url`` (tests/live.py's ``serve``, with a pool of 10)."""
    with serve(database_url, *command, SINERGI_DB_POOL_SIZE="10") as url:
        yield url


def chain_seqs(database_url: str) -> list[int]:
    eng = sa.create_engine(sync_url(database_url))
    with eng.connect() as c:
        seqs = c.execute(sa.text("SELECT seq FROM audit_event WHERE chain = '61' ORDER BY seq")).scalars().all()
    eng.dispose()
    return list(seqs)


async def test_two_servers_share_tokens_and_one_audit_chain(make_party, database_url):
    auditor = await make_party("INSPEKTORAT-KALBAR", "61", ["audit:read"], kind=AgencyKind.inspectorate)
    with server(database_url) as one, server(database_url) as two:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(one + "/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(auditor.client_id, auditor.client_secret))
            assert r.status_code == 200, r.text
            headers = {"Authorization": "Bearer " + r.json()["access_token"]}
            r = await http.get(two + "/v1/audit/verify", headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["ok"] is True
            # The same keys everywhere: no process made its own.
            jwks1 = (await http.get(one + "/.well-known/jwks.json")).json()
            jwks2 = (await http.get(two + "/.well-known/jwks.json")).json()
            assert jwks1 == jwks2 and len(jwks1["keys"]) == 1

            before = chain_seqs(database_url)
            n = 40
            replies = await asyncio.gather(*(
                http.get(base + "/v1/audit", headers=headers, params={"limit": 1})
                for _ in range(n) for base in (one, two)
            ))
            assert [r.status_code for r in replies] == [200] * (2 * n)
            after = chain_seqs(database_url)
            assert len(after) == len(before) + 2 * n
            assert after == list(range(1, len(after) + 1))

            r = await http.get(one + "/v1/audit/verify", headers=headers)
            body = r.json()
            assert body["ok"] is True and body["first_bad_seq"] is None
            assert body["checked"] == len(after)
            # A token revoked through one process is refused by the other at once.
            r = await http.post(two + "/oauth/revoke", data={"token": headers["Authorization"][7:]},
                                auth=(auditor.client_id, auditor.client_secret))
            assert r.status_code == 200
            r = await http.get(one + "/v1/audit/verify", headers=headers)
            assert r.status_code == 401


def test_serve_with_two_workers_starts(database_url):
    sinergi = str(Path(sys.executable).parent / "sinergi")
    with server(database_url, sinergi, "serve", "--workers", "2") as url:
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(url + "/readyz").status_code == 200
