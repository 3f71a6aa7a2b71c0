"""Two real server processes on one PostgreSQL: stateless, one key set, one audit chain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.core.db import sync_url
from models import AgencyKind

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def postgresql_only(backend):
    if backend.name != "postgresql":
        pytest.skip("several server processes need PostgreSQL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(database_url: str, *command: str) -> Iterator[str]:
    """Start a server process; yield its base URL once /readyz answers; always stop it."""
    port = free_port()
    env = os.environ | {
        "SINERGI_DATABASE_URL": database_url,
        "SINERGI_MODE": "development",
        "SINERGI_LOG_JSON": "false",
        "SINERGI_LOG_LEVEL": "WARNING",
        "SINERGI_DB_POOL_SIZE": "10",
    }
    args = list(command) or [sys.executable, "-m", "uvicorn", "api.main:app"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    log = tempfile.TemporaryFile()  # not a pipe: a chatty server must never block on it
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # up to ~30 s
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("server did not become ready")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


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
