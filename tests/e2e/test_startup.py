"""A server started while its database refuses connections waits for it (bounded, saying so
in its log) and becomes ready once the database is there, instead of exiting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from bench.proxy import Proxy
from tests.live import ROOT, free_port


async def test_a_server_waits_for_its_database_and_becomes_ready(backend, database_url):
    if backend.name != "postgresql":
        pytest.skip("a database that is not there yet: PostgreSQL behind a proxy that is not listening yet")
    upstream = make_url(database_url)
    db_port, http_port = free_port(), free_port()  # nothing listens on db_port: connections are refused
    url = upstream.set(host="127.0.0.1", port=db_port).render_as_string(hide_password=False)
    env = os.environ | {"SINERGI_DATABASE_URL": url, "SINERGI_MODE": "development", "SINERGI_LOG_JSON": "false",
                        "SINERGI_LOG_LEVEL": "WARNING", "SINERGI_DB_POOL_SIZE": "4", "SINERGI_DB_STARTUP_WAIT": "60"}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                             "--port", str(http_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)
    proxy = Proxy(db_port, upstream.host or "127.0.0.1", upstream.port or 5432)
    try:
        deadline = time.monotonic() + 20
        said = b""
        while b"database not reachable yet" not in said:
            assert proc.poll() is None, f"the server exited: {said.decode(errors='replace')[-2000:]}"
            assert time.monotonic() < deadline, "the server did not say it waits for the database"
            await asyncio.sleep(0.2)
            log.seek(0)
            said = log.read()
        await asyncio.sleep(1.5)
        assert proc.poll() is None, "the server gave up while its database was away"

        await proxy.set_mode("pass")  # the database is there now
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert proc.poll() is None, "the server exited"
                try:
                    r = await http.get(base + "/readyz")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready"
                await asyncio.sleep(0.2)
            assert (await http.get(base + "/.well-known/jwks.json")).json()["keys"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:  # waited for in a thread: this loop runs the proxy the server shuts down through
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        await proxy.set_mode("refuse")
