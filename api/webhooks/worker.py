"""The webhook worker: events of the outbox to signed POSTs, with retries and a delivery log.

One pass (:meth:`Worker.run_once`) does two things, each in units of work of its own (audited,
as the ``webhook-worker`` client):

1. **Fan-out.** For each active subscription whose feed has events past its position, in a
   unit that holds the subscription's row (``FOR UPDATE SKIP LOCKED``: another worker passes
   it over), the events after the position that its owner may see and that it subscribed to
   become deliveries (one per event, at most one ever: unique per subscription and event), and
   the position moves on. The position moves to the feed's head as read before the events:
   every event up to it was committed with it (the outbox numbers events in commit order), so
   none is skipped.
2. **Delivery.** A unit claims a batch of due deliveries (each its next attempt number and a
   lease, :func:`api.webhooks.repository.claim`) and commits; the attempts are posted with no
   transaction open, concurrently; a last unit writes the delivery log (one row per attempt,
   unique per delivery and attempt) and each delivery's outcome. A ``2xx`` delivers; ``410
   Gone`` fails the delivery and disables its subscription; anything else (no answer, a
   timeout, a redirect, another status) is retried after a backoff that doubles from
   ``webhook_backoff`` (jitter added) up to ``webhook_backoff_max``, until the delivery's
   retry budget (``webhook_max_attempts``) is spent: then it fails and its subscription is
   disabled. Every attempt of a delivery carries the same ``webhook-id``.

Several workers (the in-process one of every server, ``sinergi worker`` processes) share the
work through these claims and never post one attempt twice. A worker that dies mid-batch
leaves its leases to run out (``lease`` seconds, longer than an attempt can take); the
deliveries are then claimed again as their next attempt, so a receiver may see a
``webhook-id`` twice (at least once, never lost) and de-duplicates by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from api.core import audit, clock, crypto
from api.core.context import RequestContext
from api.core.db import Database
from api.core.settings import Settings
from api.core.unit import open_unit
from api.webhooks import net, repository, signing
from models import DeliveryStatus

log = logging.getLogger("sinergi.webhooks")

ACTOR = "webhook-worker"
FAN_OUT_SUBSCRIPTIONS = 50  # subscriptions looked at per pass
ERROR_WIDTH = 300


def backoff(settings: Settings, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): doubling from
    ``webhook_backoff``, capped at ``webhook_backoff_max``, plus up to a quarter of jitter."""
    base = min(settings.webhook_backoff * 2 ** (attempt - 1), settings.webhook_backoff_max)
    return base * (1 + rng.random() / 4)


@dataclass(slots=True)
class Outcome:
    claimed: repository.Claimed
    started_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class Worker:
    """Delivers webhooks from ``db``: :meth:`start` / :meth:`stop` in a server's lifespan,
    :meth:`run` for ``sinergi worker``, :meth:`run_once` for one pass."""

    def __init__(self, db: Database, settings: Settings | None = None, *, name: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db = db
        self.settings = settings or db.settings
        self.name = name or f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=self.settings.webhook_timeout * 3 + 30)
        self.rng = random.Random()
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._secrets: dict[str, str] = {}

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name=f"webhook-worker {self.name}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop after the pass under way (at most ``grace`` seconds: a pass stuck on an
        unreachable database is cancelled; its leases run out and the work is claimed again)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def wait(self) -> None:
        """Until the started worker has stopped."""
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def run(self) -> None:
        """Work until :meth:`stop`: passes back to back while there is work, else a look every
        ``webhook_poll`` seconds. A failing pass (the database away) is logged and retried."""
        try:
            while not self._stop.is_set():
                try:
                    done = await self.run_once()
                except Exception:
                    log.exception("webhook pass failed; trying again", extra={"worker": self.name})
                    done = 0
                if done:
                    continue
                try:
                    await asyncio.wait_for(self._stop.wait(), self.settings.webhook_poll)
                except TimeoutError:
                    pass
        finally:
            await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            s = self.settings
            transport = self._transport or net.GuardedTransport(
                allow_private=s.webhook_private_allowed,
                inner=httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(
                    max_connections=s.webhook_concurrency, max_keepalive_connections=s.webhook_concurrency)))
            self._http = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                                           timeout=httpx.Timeout(s.webhook_timeout),
                                           headers={"user-agent": "Sinergi-Webhooks/1"})
        return self._http

    async def run_once(self) -> int:
        """One pass: fan-out, then one batch of deliveries; returns how much it did."""
        return await self.fan_out() + await self.deliver_batch()

    def _unit(self) -> Any:
        return open_unit(self.db, RequestContext(client_id=ACTOR, route="webhook.worker"))

    # --- fan-out -----------------------------------------------------------------------------

    async def fan_out(self) -> int:
        async with self.db.read() as conn:
            behind = await repository.webhooks_behind(conn, FAN_OUT_SUBSCRIPTIONS)
        made = 0
        for webhook_id in behind:
            made += await self._fan_out_one(webhook_id)
        return made

    async def _fan_out_one(self, webhook_id: uuid.UUID) -> int:
        limit = self.settings.webhook_batch * 5
        async with self._unit() as unit:
            session = unit.session
            sub = await repository.lock_subscriber(session, webhook_id)
            if sub is None or sub.caller is None:
                return 0  # another worker has it, or gone, or its client is disabled
            before = sub.webhook.position
            head = await repository.feed_head(session, sub.webhook.feed_key)
            if head <= before:
                return 0
            events = await repository.events_for(session, sub, sub.caller, upto=head, limit=limit)
            upto = events[-1].pos if len(events) == limit else head
            now = clock.now()
            rows = [{
                "id": uuid.uuid4(), "webhook_id": sub.webhook.id, "event_id": e.id, "event_pos": e.pos,
                "event_type": e.type, "body": body_of(e), "status": DeliveryStatus.pending.value, "attempts": 0,
                "last_attempt": self.settings.webhook_max_attempts, "next_attempt_at": now, "created_at": now,
            } for e in events]
            await repository.add_deliveries(session, rows)
            await repository.move_position(session, sub.webhook.id, upto)
            if rows:
                audit.record(session, "webhook.enqueue", resource_type="webhook", resource_id=sub.webhook.id,
                             count=len(rows), after=before, upto=upto, worker=self.name)
            return max(len(rows), 1)

    # --- delivery ----------------------------------------------------------------------------

    async def deliver_batch(self) -> int:
        now = clock.now()
        async with self.db.read() as conn:
            if not await repository.any_due(conn, now):
                return 0
        async with self._unit() as unit:
            claimed = await repository.claim(unit.session, worker=self.name, now=now, lease_until=now + self.lease,
                                             limit=self.settings.webhook_batch)
            if claimed:
                audit.record(unit.session, "webhook.claim", resource_type="webhook_delivery", count=len(claimed),
                             worker=self.name)
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.settings.webhook_concurrency)

        async def one(c: repository.Claimed) -> Outcome:
            async with gate:
                return await self.post(c)

        outcomes = await asyncio.gather(*(one(c) for c in claimed))
        await self._settle(outcomes)
        return len(outcomes)

    def _secret(self, enc: str) -> str:
        secret = self._secrets.get(enc)
        if secret is None:
            secret = crypto.decrypt(enc, context=signing.CONTEXT, key=self.settings.data_key_bytes)
            self._secrets[enc] = secret
        return secret

    async def post(self, c: repository.Claimed) -> Outcome:
        """One attempt: the delivery's body, signed now, with its ``webhook-id``."""
        started = clock.now()
        body = c.body.encode()
        t0 = time.perf_counter()
        try:
            headers = signing.headers(self._secret(c.secret_enc), str(c.id), int(started.timestamp()), body)
            r = await self.http().post(c.url, content=body, headers=headers)
            await r.aclose()
            code: int | None = r.status_code
            error = None
            if r.is_redirect:
                error = f"redirect to {r.headers.get('location', '?')[:200]} not followed"
            elif not r.is_success:
                error = f"HTTP {r.status_code}"
        except net.RefusedAddress as exc:
            code, error = None, f"refused: {exc}"
        except httpx.TimeoutException:
            code, error = None, "timed out"
        except httpx.HTTPError as exc:
            code, error = None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # never lose the outcome of a claimed attempt
            code, error = None, f"{type(exc).__name__}"
        latency = int((time.perf_counter() - t0) * 1000)
        return Outcome(c, started, code, latency, None if error is None else error[:ERROR_WIDTH])

    async def _settle(self, outcomes: list[Outcome]) -> None:
        now = clock.now()
        attempts: list[dict[str, Any]] = []
        settled: list[dict[str, Any]] = []
        disable: dict[uuid.UUID, str] = {}
        counts = {"succeeded": 0, "retrying": 0, "failed": 0}
        for o in outcomes:
            c = o.claimed
            nxt: datetime | None = None
            delivered: datetime | None = None
            if o.status_code is not None and 200 <= o.status_code < 300:
                status, delivered = DeliveryStatus.succeeded, now
                counts["succeeded"] += 1
            elif o.status_code == 410:
                status = DeliveryStatus.failed
                disable.setdefault(c.webhook_id, "410 Gone")
                counts["failed"] += 1
            elif c.attempt >= c.last_attempt:
                status = DeliveryStatus.failed
                disable.setdefault(c.webhook_id, f"retry budget spent ({c.attempt} attempts)")
                counts["failed"] += 1
            else:
                status = DeliveryStatus.pending
                nxt = now + timedelta(seconds=backoff(self.settings, c.attempt, self.rng))
                counts["retrying"] += 1
            attempts.append({"id": uuid.uuid4(), "delivery_id": c.id, "attempt": c.attempt, "worker": self.name,
                             "started_at": o.started_at, "status_code": o.status_code, "latency_ms": o.latency_ms,
                             "error": o.error, "next_attempt_at": nxt})
            settled.append({"b_id": c.id, "b_attempt": c.attempt, "b_status": status.value,
                            "b_next": nxt or now, "b_code": o.status_code, "b_error": o.error,
                            "b_delivered": delivered})
        async with self._unit() as unit:
            session = unit.session
            there = await repository.still_there(session, [o.claimed.id for o in outcomes])
            await repository.record_attempts(session, [a for a in attempts if a["delivery_id"] in there])
            await repository.settle(session, self.name, [x for x in settled if x["b_id"] in there])
            hooks = sorted({o.claimed.webhook_id for o in outcomes})
            audit.record(session, "webhook.attempt", resource_type="webhook_delivery",
                         subjects=[("webhook", h) for h in hooks[:32]], worker=self.name,
                         succeeded=counts["succeeded"], retrying=counts["retrying"], failed=counts["failed"])
            for webhook_id, reason in disable.items():
                if await repository.disable(session, webhook_id, reason, now):
                    audit.record(session, "webhook.disable", resource_type="webhook", resource_id=webhook_id,
                                 reason=reason)


def body_of(e: repository.FeedEvent) -> str:
    """The JSON posted for an event: the feed's event (``id``, ``type``, ``occurred_at``, ``data``)."""
    occurred = e.occurred_at.isoformat().replace("+00:00", "Z")
    return orjson.dumps({"id": str(e.id), "type": e.type, "occurred_at": occurred,
                         "data": orjson.Fragment(e.data)}).decode()
