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
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

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
USER_AGENT = "Sinergi-Webhooks/1"
REPLY_BODY_READ = 64 * 1024  # bytes of a reply's body read at most (nothing in it is used)


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

    def __init__(self, db: Database, settings: Settings | None = None, *, name: str | None = None) -> None:
        self.db = db
        self.settings = settings or db.settings
        self.name = name or f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=self.settings.webhook_timeout * 3 + 30)
        self.rng = random.Random()
        self._lanes: dict[str, list[httpx.AsyncBaseTransport]] = {}  # receiver origin -> idle lanes
        self._tls: ssl.SSLContext | None = None  # every lane's: making one reads the CA store
        self._timeout = httpx.Timeout(self.settings.webhook_timeout).as_dict()
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
        await self._close_lanes(set(self._lanes))

    # An attempt is posted on a lane: a transport of one keep-alive connection to one receiver,
    # used by one attempt at a time; a receiver has as many lanes as it had attempts in flight at
    # once (at most ``webhook_concurrency``), and an attempt goes to the transport directly, not
    # through an ``httpx.AsyncClient``. Both for the CPU an attempt costs: the client's layers
    # are what an attempt must not have anyway (a cookie jar keeping what receivers set,
    # redirects, auth), and a pool of several connections looks at every one of them (a
    # ``select()`` each) whenever a request starts or ends.

    def _lane(self, origin: str) -> httpx.AsyncBaseTransport:
        idle = self._lanes.setdefault(origin, [])
        if idle:
            return idle.pop()
        if self._tls is None:
            self._tls = httpx.create_ssl_context()  # httpx's default: certifi's CAs, or SSL_CERT_FILE
        return net.GuardedTransport(allow_private=self.settings.webhook_private_allowed,
                                    inner=httpx.AsyncHTTPTransport(verify=self._tls, retries=0, limits=_ONE_CONNECTION))

    async def _close_lanes(self, origins: set[str]) -> None:
        """Close the lanes of these receivers (their connections)."""
        for origin in origins:
            for lane in self._lanes.pop(origin, []):
                with contextlib.suppress(Exception):
                    await lane.aclose()

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
        # receivers this batch did not post to keep no connection open
        await self._close_lanes(set(self._lanes) - {_origin(c.url) for c in claimed})
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
            request = httpx.Request("POST", c.url, content=body, headers={**headers, "user-agent": USER_AGENT},
                                    extensions={"timeout": self._timeout})
            origin = _origin(c.url)
            lane = self._lane(origin)
            try:
                # the whole attempt within webhook_timeout (httpx bounds each read, so a reply
                # sent a byte at a time would otherwise hold the attempt for as long as it likes)
                async with asyncio.timeout(self.settings.webhook_timeout):
                    r = await lane.handle_async_request(request)
                    try:
                        await _read_bounded(r)
                    finally:
                        await r.aclose()
            finally:
                self._lanes.setdefault(origin, []).append(lane)
            code: int | None = r.status_code
            error = None
            if r.is_redirect:
                error = f"redirect to {r.headers.get('location', '?')[:200]} not followed"
            elif not r.is_success:
                error = f"HTTP {r.status_code}"
        except net.RefusedAddress as exc:
            code, error = None, f"refused: {exc}"
        except (httpx.TimeoutException, TimeoutError):
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


_ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _read_bounded(r: httpx.Response) -> None:
    """Read a reply's body, at most :data:`REPLY_BODY_READ` bytes: nothing in it is used, and a
    body read to its end leaves the connection to be used again. A longer one is left unread (its
    connection is closed with it), so a receiver cannot make the worker hold a large body."""
    assert isinstance(r.stream, httpx.AsyncByteStream)
    read = 0
    async for chunk in r.stream:
        read += len(chunk)
        if read > REPLY_BODY_READ:
            return


def body_of(e: repository.FeedEvent) -> str:
    """The JSON posted for an event: the feed's event (``id``, ``type``, ``occurred_at``, ``data``)."""
    occurred = e.occurred_at.isoformat().replace("+00:00", "Z")
    return orjson.dumps({"id": str(e.id), "type": e.type, "occurred_at": occurred,
                         "data": orjson.Fragment(e.data)}).decode()
