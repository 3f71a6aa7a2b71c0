"""Row "webhooks": delivery rate against a bare httpx loop, and a receiver outage.

On a fresh PostgreSQL database, one subscription to a local receiver (``uvicorn
bench.webhook_receiver:app``, a process of its own that logs every ``webhook-id`` it gets):

1. **Rate.** ``--webhook-events`` events (``notice.created``, written by the outbox in units of
   100, as the issuing transactions write them) are delivered by one worker in this process
   (fan-out, claims, signing, the POSTs, the delivery log, the audit entries), timed from its
   first pass until the receiver has every one. Baseline, in the same run, to the same
   receiver: a bare httpx loop posting the same bodies, signed the same way, one after another
   on one keep-alive client (and, informational, 16 at once, the worker's concurrency).
2. **Outage.** As many events again, written in ten bursts while two workers run (the
   in-process worker of two servers, say); after the third burst the receiver is stopped, and
   started again three seconds later. Then: every delivery was received (zero lost), and after
   de-duplication by ``webhook-id`` none twice; raw repeats (an attempt whose reply was lost
   when the receiver went down is retried with the same ``webhook-id``) are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa

from api.agencies import service as agencies
from api.agencies.schemas import AgencyCreate, ClientCreate
from api.core import outbox
from api.core.context import Caller
from api.core.db import Database
from api.core.settings import Settings
from api.core.unit import operator_unit
from api.webhooks import service, signing
from api.webhooks.repository import FeedEvent
from api.webhooks.schemas import WebhookCreate
from api.webhooks.worker import Worker, body_of
from bench.common import ROOT, free_port, wait_answering
from models import AgencyKind, DeliveryStatus, Event, WebhookDelivery

SUBSCRIBER_SCOPES = "notices:read events:read webhooks:manage"


class ReceiverProcess:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "BENCH_WEBHOOK_LOG": str(self.log), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.webhook_receiver:app", "--host", "127.0.0.1", "--port",
             str(self.port), "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env)
        proc = self.proc
        if not wait_answering(f"http://127.0.0.1:{self.port}/", timeout=20, alive=lambda: proc.poll() is None,
                              status=None, interval=0.05):
            raise RuntimeError("the receiver did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def ids(self, path: str) -> list[str]:
        if not self.log.exists():
            return []
        return [parts[1] for line in self.log.read_text().splitlines() if (parts := line.split())[0] == path]


def run_webhooks(args: argparse.Namespace, url: str) -> list[str]:
    return asyncio.run(_run(args.webhook_events, url))


async def _run(n: int, url: str) -> list[str]:
    settings = Settings(database_url=url, mode="development", webhook_worker=False, webhook_backoff=0.2,
                        webhook_backoff_max=1.0, webhook_max_attempts=50, webhook_poll=0.05, webhook_timeout=5)
    db = Database(settings)
    folder = Path(tempfile.mkdtemp(prefix="sinergi-webhooks-"))
    receiver = ReceiverProcess(free_port(), folder / "received.log")
    receiver.start()
    hook_url = f"http://127.0.0.1:{receiver.port}/hooks"

    async with operator_unit(db, "bench") as session:
        await agencies.create_agency(session, AgencyCreate(code="BP3MI-KALBAR", name="BP3MI Kalimantan Barat",
                                                           kind=AgencyKind.migrant_protection, jurisdiction="61"))
        client = await agencies.create_client(session, "BP3MI-KALBAR", ClientCreate(scopes=SUBSCRIBER_SCOPES))
    caller = Caller(client.client_id, "BP3MI-KALBAR", AgencyKind.migrant_protection, "61",
                    frozenset(SUBSCRIBER_SCOPES.split()), "bench")
    async with operator_unit(db, "bench") as session:
        webhook, secret = await service.create(session, caller, WebhookCreate(url=hook_url,
                                                                                event_types=["notice.created"]))

    async def emit(count: int) -> None:
        for start in range(0, count, 100):
            async with operator_unit(db, "bench") as session:
                for _ in range(min(100, count - start)):
                    outbox.emit(session, "notice.created", {"id": str(uuid.uuid4()), "district": "61.07",
                                                            "issued_by": "BP3MI-KALBAR", "returnee_count": 3},
                                region="61.07", audience=["BP3MI-KALBAR"])

    try:
        await emit(n)
        # the bodies the worker will post, built the same way, before any clock starts
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(Event.pos, Event.id, Event.type, Event.occurred_at, Event.data)
                                       .order_by(Event.pos))).all()
        bodies = [body_of(FeedEvent(int(r[0]), r[1], r[2], r[3], r[4])).encode() for r in rows]

        http = httpx.AsyncClient()
        gate = asyncio.Semaphore(settings.webhook_concurrency)

        async def post(path: str, i: int, body: bytes) -> None:
            headers = signing.headers(secret, f"{path}-{i}", int(time.time()), body)
            r = await http.post(f"http://127.0.0.1:{receiver.port}/{path}", content=body, headers=headers)
            r.raise_for_status()

        async def gated(path: str, i: int, body: bytes) -> None:
            async with gate:
                await post(path, i, body)

        async def bare_loop(path: str) -> float:
            t0 = time.perf_counter()
            for i, body in enumerate(bodies):
                await post(path, i, body)
            return time.perf_counter() - t0

        async def bare_concurrent(path: str) -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(gated(path, i, b) for i, b in enumerate(bodies)))
            return time.perf_counter() - t0

        for i in range(20):  # warm-up
            await post("warm", i, bodies[0])
        # the baselines before and after the worker's run (the machine's load drifts): their mean
        base_before, conc_before = await bare_loop("baseline"), await bare_concurrent("concurrent")

        worker = Worker(db, settings, name="bench-1")
        t0 = time.perf_counter()
        deadline = time.monotonic() + 300
        while len(set(receiver.ids("/hooks"))) < n and time.monotonic() < deadline:
            if not await worker.run_once():
                await asyncio.sleep(0.01)
        ours_s = time.perf_counter() - t0
        await worker.close()
        first = receiver.ids("/hooks")
        base_after, conc_after = await bare_loop("baseline2"), await bare_concurrent("concurrent2")
        await http.aclose()
        base_s, conc_s = (base_before + base_after) / 2, (conc_before + conc_after) / 2

        # the outage: two workers running, the receiver down for three seconds mid-way
        workers = [Worker(db, settings, name=f"bench-{i}") for i in (2, 3)]
        for w in workers:
            w.start()
        down_at = up_at = 0.0
        for burst in range(10):
            await emit(n // 10)
            if burst == 2:
                receiver.stop()
                down_at = time.perf_counter()
            await asyncio.sleep(0.3)
            if down_at and not up_at and time.perf_counter() - down_at >= 3.0:
                receiver.start()
                up_at = time.perf_counter()
        if not up_at:
            await asyncio.sleep(max(0.0, 3.0 - (time.perf_counter() - down_at)))
            receiver.start()
            up_at = time.perf_counter()
        deadline = time.monotonic() + 300
        while len(set(receiver.ids("/hooks"))) < 2 * n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        drained_s = time.perf_counter() - up_at
        for w in workers:
            await w.stop()

        received = receiver.ids("/hooks")
        async with db.read() as conn:
            made = {str(r[0]): r[1] for r in (await conn.execute(
                sa.select(WebhookDelivery.id, WebhookDelivery.status))).all()}
            events = (await conn.execute(sa.select(sa.func.count(sa.distinct(WebhookDelivery.event_id))))).scalar_one()
        unique = set(received)
        lost = [i for i in made if i not in unique]
        strangers = unique - set(made)
        repeats = sum(c - 1 for c in Counter(received).values())
        not_done = sum(1 for s in made.values() if s != DeliveryStatus.succeeded)
        twice = len(made) - events + len(strangers)  # an event under two webhook-ids, or an id we never made
        first_repeats = len(first) - len(set(first))
    finally:
        receiver.stop()
        await db.dispose()

    base_rate, conc_rate, ours_rate = n / base_s, n / conc_s, n / ours_s
    ratio = ours_rate / base_rate
    ok = not lost and not twice and not_done == 0 and len(made) == 2 * n
    return [
        f"| webhook delivery: {n:,} events to a local receiver (a uvicorn process), one worker in process on "
        f"PostgreSQL (fan-out, claims, signing, delivery log, audit); baseline: a bare httpx loop posting the same "
        f"signed bodies to the same receiver, one after another (mean of a run before and one after) | {base_rate:,.0f} /s | {ours_rate:,.0f} /s | {ratio:.2f} | ≥ 0.70 | "
        f"{'ok' if ratio >= 0.7 else 'BELOW TARGET'} |",
        f"| informational: the baseline posting {settings.webhook_concurrency} at once (the worker's concurrency) "
        f"| {conc_rate:,.0f} /s | {ours_rate:,.0f} /s | {ours_rate / conc_rate:.2f} | (none) | informational |",
        f"| webhook delivery across a receiver outage: {n:,} more events in 10 bursts, 2 workers, the receiver "
        f"stopped for {up_at - down_at:.1f} s after the third burst | — | {len(made):,} deliveries: {len(lost)} lost, "
        f"{twice} twice after de-dup by webhook-id ({repeats + first_repeats} raw repeats), all delivered "
        f"{drained_s:.1f} s after the restart | — | 0 lost, 0 twice | {'ok' if ok else 'LOST OR UNKNOWN DELIVERIES'} |",
    ]
