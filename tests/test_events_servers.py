"""The change feed across two real server processes on one PostgreSQL (PostgreSQL only)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from bench.common import wait_answering
from models import AgencyKind
from tests.returnee_rows import insert_returnees
from tests.test_notices import BP3MI_SCOPES, DISTRICT_SCOPES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def servers(backend, database_url) -> Iterator[list[str]]:
    if backend.name != "postgresql":
        pytest.skip("two server processes share one PostgreSQL")
    env = {**os.environ, "SINERGI_DATABASE_URL": database_url, "SINERGI_MODE": "development",
           "SINERGI_LOG_LEVEL": "WARNING", "SINERGI_LOG_JSON": "false", "SINERGI_DB_POOL_SIZE": "8"}
    procs, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
                 "--no-access-log"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            ))
            urls.append(f"http://127.0.0.1:{port}")
        for proc, url in zip(procs, urls, strict=True):
            if not wait_answering(url + "/healthz", timeout=30, alive=lambda proc=proc: proc.poll() is None):
                if proc.poll() is not None:
                    pytest.fail(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
                pytest.fail("server did not start")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_change_feed_under_concurrent_writers_on_two_servers_misses_nothing(servers, make_party, db):
    """Writers on two server processes create and acknowledge notices at once while a reader
    polls the feed with after=cursor: the reader sees every event exactly once, in order."""
    bp3mi = await make_party("BP3MI-KALBAR", "61", BP3MI_SCOPES, kind=AgencyKind.migrant_protection)
    districts = ["61.07", "61.01", "61.02", "61.03", "61.04"]
    ackers = {d: await make_party(f"DP3A-{d.replace('.', '')}", d, DISTRICT_SCOPES) for d in districts}
    returnees = {d: await insert_returnees(db, "BP3MI-KALBAR", d, 16) for d in districts}
    write_h = await bp3mi.headers()
    read_h = await bp3mi.headers()
    ack_h = {d: await p.headers(**{"If-Match": '"1"'}) for d, p in ackers.items()}
    expected = 2 * sum(len(v) for v in returnees.values())

    limits = httpx.Limits(max_connections=16)
    clients = [httpx.AsyncClient(base_url=u, timeout=30, limits=limits) for u in servers]
    reader_client = httpx.AsyncClient(base_url=servers[0], timeout=30)
    gate = asyncio.Semaphore(24)
    done = asyncio.Event()
    seen: list[str] = []
    polls_during_writes = 0

    async def writer(i: int, d: str, rid) -> None:
        http = clients[i % 2]
        async with gate:
            r = await http.post("/v1/notices", json={"district": d, "returnee_ids": [str(rid)]}, headers=write_h)
            assert r.status_code == 201, r.text
            r = await clients[(i + 1) % 2].post(f"/v1/notices/{r.json()['id']}/acknowledge", headers=ack_h[d])
            assert r.status_code == 200, r.text

    async def reader() -> None:
        nonlocal polls_during_writes
        cursor = None
        while True:
            finished = done.is_set()
            params = {"limit": 9, **({"after": cursor} if cursor else {})}
            r = await reader_client.get("/v1/events", params=params, headers=read_h)
            assert r.status_code == 200, r.text
            body = r.json()
            seen.extend(e["id"] for e in body["items"])
            cursor = body["next_cursor"]
            if not finished and body["items"]:
                polls_during_writes += 1
            if finished and not body["items"]:
                return
            await asyncio.sleep(0.005)

    try:
        reading = asyncio.create_task(reader())
        jobs = [(d, rid) for d in districts for rid in returnees[d]]
        await asyncio.gather(*(writer(i, d, rid) for i, (d, rid) in enumerate(jobs)))
        done.set()
        await reading
    finally:
        for c in (*clients, reader_client):
            await c.aclose()

    async with db.sessionmaker() as s:
        stored = [str(r[0]) for r in (await s.execute(sa.text("SELECT id FROM event ORDER BY pos"))).all()]
    assert len(stored) == expected
    assert len(set(seen)) == len(seen), "an event was delivered twice"
    assert seen == stored, "the reader missed events or saw them out of order"
    assert polls_during_writes > 1  # the reader really read while the writers wrote
