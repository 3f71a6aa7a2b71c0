"""The mixed workload of ``make soak`` and ``make faults``, and the consistency checks after it.

What runs (each a loop of its own, against the servers given, round robin):

* batch pushes of returnees by BP3MI, with an ``Idempotency-Key`` and without; one in three
  sent twice at once to two servers (a concurrent duplicate), one in four a re-push of an
  earlier batch with changed content (updates);
* referrals created by BP3MI (keyed and not; keyed ones sometimes sent twice at once) and moved
  through their states by the police with ``If-Match`` (one move in three sent twice at once
  with the same ``If-Match``: exactly one may win);
* deportation notices (keyed and not), acknowledged by the district with ``If-Match`` (some
  twice at once) and followed up;
* reads of referrals, notices and the returnee list, the district x month statistics;
* two change-feed pollers (a province task force, which sees every event);
* a periodic ``GET /v1/audit/verify`` (and, at the end, a verify against a checkpoint taken at
  the start); optionally a burst of simultaneous token requests (``burst_at``).

Every request carries its own ``X-Request-ID``; every write is a logical :class:`Op` (its
attempts, its outcome: ``ok``, ``failed`` when the server's answer says nothing was done, or
``unknown``). A client that is told "nothing was changed, retry" retries; one that is told the
outcome is unknown (503 ``/problems/outcome-unknown``, or no answer after the request was sent)
retries only under its ``Idempotency-Key``, or with its ``If-Match`` (a conditional write made
already is refused, 412 or 409, never made twice) (API.md, Conventions).

:func:`check` then compares what the clients were told with what the database holds: see its
docstring for the list. Loopback only; every loop is bounded in time and count.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import orjson
import psycopg

from bench.common import Credentials, records

CONSENT = {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z", "method": "written"}
PATHS = (
    ("receive", "accept", "start", "complete"),
    ("receive", "accept", "start", "hold", "resume", "complete"),
    ("receive", "reject"),
)
# the status a referral is in after each action (to resume a path after an unknown outcome)
AFTER = {"receive": "received", "accept": "accepted", "start": "in-progress", "hold": "on-hold",
         "resume": "in-progress", "complete": "completed", "reject": "rejected"}
WRITE_KINDS = ("batch", "batch.update", "batch.big", "referral.create", "referral.transition", "notice.create",
               "notice.ack", "notice.follow_up")


class Unavailable(Exception):
    """No token could be had (the service is down): the actor waits and tries again."""


@dataclass(slots=True)
class Sample:
    kind: str
    server: int
    t0: float
    t1: float
    status: int | None  # None: no HTTP answer
    error: str | None  # the transport error, when no answer
    request_id: str
    path: str
    ptype: str | None = None  # the problem type of an error reply
    retry_after: str | None = None
    content_type: str | None = None
    detail: str | None = None

    @property
    def latency(self) -> float:
        return self.t1 - self.t0


@dataclass(slots=True)
class Reply:
    status: int | None
    body: Any
    headers: httpx.Headers | None
    error: str | None
    sent: bool  # the request may have reached the server
    request_id: str
    ptype: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Op:
    """One logical write (its retries included). Ops sent at once as duplicates share ``group``."""

    kind: str
    group: int
    keyed: bool
    marker: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    t_sent: float = 0.0
    t_done: float = 0.0
    outcome: str = "pending"  # ok | failed | unknown
    attempts: list[tuple[str, Any, str | None, int]] = field(default_factory=list)  # (request id, status, type, server)
    reply: Reply | None = None
    conditional: bool = False  # sent with If-Match: safe to retry after an unknown outcome


@dataclass
class Poller:
    name: str
    cursor: str | None = None
    ids: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # the last position of each non-empty page
    pages: int = 0


@dataclass
class Finding:
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


def _unknown_type(ptype: str | None) -> bool:
    return bool(ptype) and "unknown" in str(ptype)


def _pos_of(cursor: str) -> int:
    """The feed position a cursor holds. Cursors are sealed with the data key; the servers of
    these runs use the development keys, which the harness holds too."""
    from api.core.settings import Settings
    from api.events.schemas import EVENTS

    position = EVENTS.open(Settings(mode="development"), cursor)
    return int(position[0]) if position else -1


class Load:
    """The clients of one run (kept across the phases of a fault run: its ops, samples and
    pollers accumulate)."""

    def __init__(self, servers: list[str], creds: dict[str, Credentials], *, timeout: float = 60.0,
                 batch_size: int = 20, verify_every: float = 5.0, burst_at: float | None = None,
                 burst_size: int = 21, burst_url: str | None = None, seed: int | None = None,
                 scale: int = 1) -> None:
        self.urls = servers
        self.burst_url = burst_url  # a server of its own, idle until the burst
        self.creds = creds
        self.timeout = timeout
        self.batch_size = batch_size
        self.verify_every = verify_every
        self.burst_at, self.burst_size = burst_at, burst_size
        self.scale = scale  # actors of each kind
        self.rand = random.Random(seed)
        self.run_tag = uuid.uuid4().hex[:6]
        self.http: list[httpx.AsyncClient] = []
        self.up = [True] * len(servers)
        self.samples: list[Sample] = []
        self.ops: list[Op] = []
        self.findings: list[Finding] = []  # seen while running (a verify that failed, a replay that differs)
        self.verifies: list[tuple[float, bool | None, int | None]] = []
        self.checkpoint: str | None = None
        self.pollers = [Poller("poller-1"), Poller("poller-2")]
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_lock: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._groups = itertools.count(1)
        self._numbers = itertools.count(0)
        self._markers = itertools.count(0)  # unique across the runs of one Load
        self._rr = itertools.count(0)
        self.batches_done: list[Op] = []  # ok create batches, for updates
        self.returnee_ids: list[str] = []  # for notices
        self.referral_ids: list[str] = []  # for readers
        self.notice_ids: list[str] = []
        self.stop = asyncio.Event()  # actors finish what they do and leave
        self.hard_stop = asyncio.Event()  # and stop retrying
        self.writers_done = asyncio.Event()
        self.started = 0.0

    # --- plumbing ----------------------------------------------------------------------------

    async def __aenter__(self) -> Load:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = [httpx.AsyncClient(base_url=u, timeout=self.timeout, limits=limits) for u in self.urls]
        if self.burst_url:  # last, where pick() never goes
            self.http.append(httpx.AsyncClient(base_url=self.burst_url, timeout=self.timeout, limits=limits))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self.http:
            await c.aclose()

    def pick(self, avoid: int | None = None) -> int:
        n = len(self.urls)
        for _ in range(2 * n):
            i = next(self._rr) % n
            if self.up[i] and i != avoid:
                return i
        return (avoid + 1) % n if avoid is not None else 0

    def group(self) -> int:
        return next(self._groups)

    async def token(self, who: str, server: int | None = None) -> str:
        cached = self._tokens.get(who)
        if cached and time.monotonic() - cached[1] < 600:
            return cached[0]
        async with self._token_lock[who]:
            cached = self._tokens.get(who)
            if cached and time.monotonic() - cached[1] < 600:
                return cached[0]
            c = self.creds[who]
            for attempt in range(20):
                i = server if server is not None and attempt == 0 else self.pick()
                r = await self._raw("token", i, "POST", "/oauth/token", None,
                                    data={"grant_type": "client_credentials"}, auth=(c.client_id, c.secret))
                if r.status == 200:
                    self._tokens[who] = (r.body["access_token"], time.monotonic())
                    return r.body["access_token"]
                if self.hard_stop.is_set():
                    break
                await asyncio.sleep(0.25)
            raise Unavailable(who)

    async def _raw(self, kind: str, i: int, method: str, path: str, headers: dict[str, str] | None,
                   **kw: Any) -> Reply:
        rid = uuid.uuid4().hex
        h = {"X-Request-ID": rid, **(headers or {})}
        t0 = time.monotonic()
        status = error = None
        sent = True
        resp = None
        try:
            resp = await self.http[i].request(method, path, headers=h, **kw)
            status = resp.status_code
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error, sent = type(exc).__name__, False
        except httpx.TransportError as exc:
            error = type(exc).__name__
        t1 = time.monotonic()
        body: Any = None
        ptype = None
        if resp is not None:
            try:
                body = resp.json() if resp.content else None
            except ValueError:
                body = None
            if status is not None and status >= 400 and isinstance(body, dict):
                ptype = body.get("type")
        s = Sample(kind, i, t0, t1, status, error, rid, path, ptype)
        if resp is not None and status is not None and status >= 400:
            s.retry_after = resp.headers.get("retry-after")
            s.content_type = resp.headers.get("content-type")
            s.detail = (body or {}).get("detail") if isinstance(body, dict) else resp.text[:200]
        self.samples.append(s)
        return Reply(status, body, resp.headers if resp is not None else None, error, sent, rid, ptype)

    async def send(self, kind: str, who: str, method: str, path: str, *, server: int | None = None,
                   headers: dict[str, str] | None = None, **kw: Any) -> Reply:
        i = self.pick() if server is None else server
        token = await self.token(who)
        r = await self._raw(kind, i, method, path, {"Authorization": f"Bearer {token}", **(headers or {})}, **kw)
        if r.status == 401:  # an expired token: once more with a new one
            self._tokens.pop(who, None)
            token = await self.token(who)
            r = await self._raw(kind, i, method, path, {"Authorization": f"Bearer {token}", **(headers or {})}, **kw)
        return r

    async def run_op(self, op: Op, attempt: Any, *, first: int | None = None, max_attempts: int = 8) -> Op:
        """Run ``attempt(server) -> Reply`` until its outcome is known: what a careful client
        does (API.md): retry what the server says changed nothing, retry an unknown outcome only
        under the op's Idempotency-Key or its If-Match, a request that never reached the server
        anywhere. An op that had an unknown outcome and is then refused (412, 409) is unknown,
        not failed: the refusal may be of its own first attempt."""
        self.ops.append(op)
        op.t_sent = time.monotonic()
        server = self.pick() if first is None else first
        unknown = False
        for n in range(max_attempts):
            try:
                r = await attempt(server)
            except Unavailable:
                r = Reply(None, None, None, "no token", False, "")
            op.attempts.append((r.request_id, r.status if r.status is not None else r.error, r.ptype, server))
            if r.ok:
                op.outcome, op.reply = "ok", r
                break
            retry = False
            if r.status is None:
                if not r.sent:
                    retry = True  # it never reached a server
                else:
                    unknown = True
                    retry = op.keyed or op.conditional
            elif r.status == 503:
                if _unknown_type(r.ptype):
                    unknown = True
                    retry = op.keyed or op.conditional
                else:
                    retry = True  # "nothing was changed": the client believes it
            elif r.status == 409 and (op.kind.startswith("batch") or "still being processed" in str(
                    (r.body or {}).get("detail", ""))):
                retry = True  # a concurrent batch with the same records, or the same key still running
            elif r.status == 429:
                retry = True
            if not retry:
                op.outcome, op.reply = "failed", r  # made "unknown" below if an attempt may have done it
                break
            if self.hard_stop.is_set() and not op.keyed:
                break
            retry_after = 0.2
            if r.headers is not None and r.headers.get("retry-after", "").isdigit():
                retry_after = min(1.0, float(r.headers["retry-after"]))
            await asyncio.sleep(retry_after * (1 + n / 2))
            server = self.pick(avoid=server)
        if op.outcome == "pending":
            op.outcome = "unknown" if unknown else "failed"
        if op.outcome == "failed" and unknown:
            op.outcome = "unknown"  # an earlier attempt may have done it
        op.t_done = time.monotonic()
        return op

    # --- the writers ---------------------------------------------------------------------------

    def _numbers_for(self, n: int) -> int:
        first = next(self._numbers)
        for _ in range(n - 1):
            next(self._numbers)
        return first

    async def push_batch(self, *, keyed: bool, dup: bool, size: int | None = None, kind: str = "batch",
                         first: int | None = None, kill: Any = None) -> list[Op]:
        size = size or self.batch_size
        recs = records(size, self.run_tag, start=self._numbers_for(size))
        body = orjson.dumps({"records": recs})
        key = f"soak-{uuid.uuid4().hex}" if keyed else None
        g = self.group()
        refs = [r["source_ref"] for r in recs]
        headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}

        def attempt(server: int) -> Any:
            return self.send(kind, "bp3mi", "POST", "/v1/returnees/batch", server=server, headers=headers,
                             content=body)

        ops = [Op(kind, g, keyed, refs[0], {"refs": refs, "records": recs}) for _ in range(2 if dup else 1)]
        if dup:
            a = self.pick()
            await asyncio.gather(self.run_op(ops[0], attempt, first=a), self.run_op(ops[1], attempt, first=self.pick(avoid=a)))
        else:
            task = asyncio.ensure_future(self.run_op(ops[0], attempt, first=first))
            if kill is not None:
                await kill(task)
            await task
        self._after_batch(ops, {"created", "unchanged"})
        if any(o.outcome == "ok" for o in ops):
            self.batches_done.append(ops[0])
        return ops

    def _after_batch(self, ops: list[Op], allowed: set[str]) -> None:
        results = []
        for op in ops:
            if op.outcome != "ok" or not isinstance(op.reply.body, dict):
                continue
            res = op.reply.body.get("results", [])
            statuses = {x.get("status") for x in res}
            if not statuses <= allowed:
                self.findings.append(Finding("batch", f"batch {op.marker}: results {sorted(statuses)} (expected "
                                                      f"{sorted(allowed)}): {res[:1]}"))
            results.append({x["source_ref"]: x.get("id") for x in res})
        if len(results) == 2 and results[0] != results[1]:
            self.findings.append(Finding("duplicate", f"batch {ops[0].marker} sent twice at once got two different "
                                                      "sets of record ids"))
        if results and ops[0].kind in ("batch", "batch.big"):
            self.returnee_ids.extend(v for v in results[0].values() if v)

    async def update_batch(self, *, keyed: bool, dup: bool) -> list[Op]:
        candidates = [b for b in self.batches_done if not b.info.get("updated")]
        if not candidates:
            return []
        base = candidates[0]
        base.info["updated"] = True
        tag = f"Updated {self.run_tag} {uuid.uuid4().hex[:8]}"
        recs = [{**r, "employer": tag} for r in base.info["records"]]
        body = orjson.dumps({"records": recs})
        key = f"soak-{uuid.uuid4().hex}" if keyed else None
        headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
        g = self.group()

        def attempt(server: int) -> Any:
            return self.send("batch.update", "bp3mi", "POST", "/v1/returnees/batch", server=server, headers=headers,
                             content=body)

        ops = [Op("batch.update", g, keyed, tag, {"refs": base.info["refs"], "tag": tag}) for _ in range(2 if dup else 1)]
        if dup:
            a = self.pick()
            await asyncio.gather(self.run_op(ops[0], attempt, first=a), self.run_op(ops[1], attempt, first=self.pick(avoid=a)))
        else:
            await self.run_op(ops[0], attempt)
        self._after_batch(ops, {"updated", "unchanged"})
        return ops

    async def pusher(self, keyed: bool) -> None:
        for n in range(1_000_000):
            if self.stop.is_set():
                return
            try:
                if n % 4 == 3:
                    await self.update_batch(keyed=keyed, dup=n % 8 == 7)
                else:
                    await self.push_batch(keyed=keyed, dup=n % 3 == 1)
            except Unavailable:
                await asyncio.sleep(0.2)

    async def _create(self, kind: str, who: str, path: str, body: dict[str, Any], marker: str, *, keyed: bool,
                      dup: bool) -> Op | None:
        key = f"soak-{uuid.uuid4().hex}" if keyed else None
        headers = {"Idempotency-Key": key} if key else {}
        g = self.group()

        def attempt(server: int) -> Any:
            return self.send(kind, who, "POST", path, server=server, headers=headers, json=body)

        ops = [Op(kind, g, keyed, marker) for _ in range(2 if dup and keyed else 1)]
        if len(ops) == 2:
            a = self.pick()
            await asyncio.gather(self.run_op(ops[0], attempt, first=a), self.run_op(ops[1], attempt, first=self.pick(avoid=a)))
        else:
            await self.run_op(ops[0], attempt)
        ids = {op.reply.body.get("id") for op in ops if op.outcome == "ok" and isinstance(op.reply.body, dict)}
        if len(ids) > 1:
            self.findings.append(Finding("duplicate", f"{kind} {marker} sent twice at once under one key got two ids"))
        for op in ops:
            if op.outcome == "ok":
                return op
        return None

    async def referral_driver(self, lane: int) -> None:
        for n in range(1_000_000):
            if self.stop.is_set():
                return
            try:
                await self._one_referral(lane, n)
            except Unavailable:
                await asyncio.sleep(0.2)

    async def _one_referral(self, lane: int, n: int) -> None:
        marker = f"soak {self.run_tag} referral {lane}-{next(self._markers)}"
        body = {"to_agency": "POLRES-BENGKAYANG",
                "subject": {"full_name": f"Subjek {lane}-{n}", "sex": "F", "birth_date": "1998-02-03",
                            "district": "61.07.07"},
                "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51", "urgency": "normal",
                "consent": CONSENT, "note": marker}
        op = await self._create("referral.create", "bp3mi", "/v1/referrals", body, marker, keyed=n % 2 == 0,
                                dup=n % 4 == 0)
        if op is None:
            return
        rid = op.reply.body["id"]
        self.referral_ids.append(rid)
        etag = op.reply.headers.get("etag") if op.reply.headers else '"1"'
        status = "requested"
        path = PATHS[n % len(PATHS)]
        for action in path:
            if self.stop.is_set():
                return
            dup = self.rand.random() < 1 / 3
            g = self.group()
            payload = {"action": action, **({"note": "outside our remit"} if action == "reject" else {})}
            headers = {"If-Match": etag or '"1"'}

            def attempt(server: int, headers: dict[str, str] = headers, payload: dict[str, Any] = payload) -> Any:
                return self.send("referral.transition", "polres", "POST", f"/v1/referrals/{rid}/transitions",
                                 server=server, headers=headers, json=payload)

            ops = [Op("referral.transition", g, False, f"{rid} {action}", {"id": rid, "action": action, "from": status},
                      conditional=True) for _ in range(2 if dup else 1)]
            if dup:
                a = self.pick()
                await asyncio.gather(self.run_op(ops[0], attempt, first=a),
                                     self.run_op(ops[1], attempt, first=self.pick(avoid=a)))
            else:
                await self.run_op(ops[0], attempt)
            won = [o for o in ops if o.outcome == "ok"]
            if won and won[0].reply.headers is not None:
                etag, status = won[0].reply.headers.get("etag"), AFTER[action]
            else:
                got = await self._resync("referral", f"/v1/referrals/{rid}", "polres")
                if got is None:
                    return
                body_now, etag = got
                status = body_now.get("status")
                if status != AFTER[action]:
                    return  # leave it where it is (a move it did not make is not retried blindly)
            # a read of it by the sender, now and then
            if self.rand.random() < 0.5:
                await self.send("referral.read", "bp3mi", "GET", f"/v1/referrals/{rid}")

    async def _resync(self, kind: str, path: str, who: str) -> tuple[dict[str, Any], str | None] | None:
        for _ in range(10):
            try:
                r = await self.send(f"{kind}.read", who, "GET", path)
            except Unavailable:
                r = None
            if r is not None and r.status == 200:
                return r.body, r.headers.get("etag") if r.headers else None
            if r is not None and r.status == 404 or self.hard_stop.is_set():
                return None
            await asyncio.sleep(0.3)
        return None

    async def notice_driver(self, lane: int) -> None:
        for n in range(1_000_000):
            if self.stop.is_set():
                return
            if len(self.returnee_ids) < 3:
                await asyncio.sleep(0.1)
                continue
            try:
                await self._one_notice(lane, n)
            except Unavailable:
                await asyncio.sleep(0.2)

    async def _one_notice(self, lane: int, n: int) -> None:
        marker = f"soak {self.run_tag} notice {lane}-{next(self._markers)}"
        ids = self.rand.sample(self.returnee_ids[-200:], k=min(3, len(self.returnee_ids)))
        body = {"district": "61.07", "returnee_ids": ids, "summary": marker, "arrival_date": "2025-06-12",
                "entry_point": "PLBN Jagoi Babang"}
        op = await self._create("notice.create", "bp3mi", "/v1/notices", body, marker, keyed=n % 2 == 0, dup=n % 4 == 0)
        if op is None:
            return
        nid = op.reply.body["id"]
        self.notice_ids.append(nid)
        if self.stop.is_set():
            return
        g = self.group()
        dup = n % 3 == 0

        def ack(server: int) -> Any:
            return self.send("notice.ack", "dp3a", "POST", f"/v1/notices/{nid}/acknowledge", server=server,
                             headers={"If-Match": '"1"'})

        ops = [Op("notice.ack", g, False, nid, {"id": nid}, conditional=True) for _ in range(2 if dup else 1)]
        if dup:
            a = self.pick()
            await asyncio.gather(self.run_op(ops[0], ack, first=a), self.run_op(ops[1], ack, first=self.pick(avoid=a)))
        else:
            await self.run_op(ops[0], ack)
        fmarker = f"soak {self.run_tag} follow-up {lane}-{next(self._markers)}"
        await self._create("notice.follow_up", "dp3a", f"/v1/notices/{nid}/follow-ups",
                           {"action": "home_visit", "note": fmarker, "occurred_on": date.today().isoformat()},
                           fmarker, keyed=n % 2 == 1, dup=False)
        await self.send("notice.read", "dp3a", "GET", f"/v1/notices/{nid}")

    # --- the readers ---------------------------------------------------------------------------

    async def reader(self, lane: int) -> None:
        for n in range(10_000_000):
            if self.stop.is_set():
                return
            try:
                which = (n + lane) % 3
                if which == 0 and self.referral_ids:
                    await self.send("referral.read", "bp3mi", "GET", f"/v1/referrals/{self.rand.choice(self.referral_ids)}")
                elif which == 1:
                    await self.send("returnee.list", "dp3a", "GET", "/v1/returnees",
                                    params={"district": "61.07", "limit": 20})
                elif self.notice_ids:
                    await self.send("notice.read", "dp3a", "GET", f"/v1/notices/{self.rand.choice(self.notice_ids)}")
                else:
                    await asyncio.sleep(0.05)
            except Unavailable:
                await asyncio.sleep(0.2)

    async def stats_reader(self) -> None:
        for _ in range(10_000_000):
            if self.stop.is_set():
                return
            try:
                await self.send("stats", "province", "GET", "/v1/stats/returnees", params={"group_by": "district,month"})
            except Unavailable:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.05)

    async def poll(self, p: Poller, *, deadline: float) -> None:
        """Read the feed after the poller's cursor until the writers are done and a page comes
        back empty (or ``deadline``)."""
        while time.monotonic() < deadline:
            finishing = self.writers_done.is_set()
            params: dict[str, Any] = {"limit": 200, **({"after": p.cursor} if p.cursor else {})}
            try:
                r = await self.send("feed", "taskforce", "GET", "/v1/events", params=params)
            except Unavailable:
                await asyncio.sleep(0.2)
                continue
            if r.status != 200:
                await asyncio.sleep(0.2)
                continue
            items = r.body["items"]
            p.pages += 1
            p.ids.extend(i["id"] for i in items)
            p.cursor = r.body["next_cursor"]
            if items:
                p.positions.append(_pos_of(p.cursor))
            elif finishing:
                return
            else:
                await asyncio.sleep(0.05)

    async def verifier(self) -> None:
        next_at = time.monotonic() + self.verify_every
        while not self.stop.is_set():
            await asyncio.sleep(max(0.0, min(0.2, next_at - time.monotonic())))
            if time.monotonic() < next_at:
                continue
            next_at = time.monotonic() + self.verify_every
            await self.verify_once()

    async def verify_once(self, checkpoint: str | None = None) -> bool | None:
        try:
            r = await self.send("verify", "auditor", "GET", "/v1/audit/verify",
                                params={"checkpoint": checkpoint} if checkpoint else None)
        except Unavailable:
            return None
        ok = r.body.get("ok") if r.status == 200 else None
        self.verifies.append((time.monotonic(), ok, r.body.get("checked") if r.status == 200 else None))
        if ok is False:
            self.findings.append(Finding("chain", f"the audit chain did not verify: {r.body}"))
        return ok

    async def take_checkpoint(self) -> None:
        try:
            r = await self.send("checkpoint", "auditor", "GET", "/v1/audit/checkpoint")
        except Unavailable:
            return
        if r.status == 200:
            self.checkpoint = r.body["checkpoint"]

    async def token_burst(self) -> None:
        """``burst_size`` token requests at once, ``burst_at`` seconds in, to a server that has
        been idle since it started (its key store is due for a refresh: partner systems
        starting together after a quiet spell)."""
        assert self.burst_at is not None
        await asyncio.sleep(max(0.0, self.started + self.burst_at - time.monotonic()))
        if self.stop.is_set():
            return
        c = self.creds["bp3mi"]
        i = len(self.http) - 1 if self.burst_url else 0
        await asyncio.gather(*(self._raw("token.burst", i, "POST", "/oauth/token", None,
                                         data={"grant_type": "client_credentials"}, auth=(c.client_id, c.secret))
                               for _ in range(self.burst_size)))

    # --- a run ---------------------------------------------------------------------------------

    async def run(self, seconds: float, controller: Any = None, *, grace: float = 30.0) -> float:
        """The workload for ``seconds`` (and while ``controller``, a coroutine, runs), then the
        writers finish, the pollers drain the feed; returns the time the load ran."""
        self.stop.clear()
        self.hard_stop.clear()
        self.writers_done.clear()
        self.started = time.monotonic()
        if self.checkpoint is None:
            await self.take_checkpoint()
        writers = []
        for lane in range(self.scale):
            writers += [self.pusher(True), self.pusher(lane % 2 == 1), self.referral_driver(2 * lane),
                        self.referral_driver(2 * lane + 1), self.notice_driver(lane)]
        others = [self.reader(0), self.reader(1), self.reader(2), self.stats_reader(), self.verifier()]
        if self.burst_at is not None and seconds > self.burst_at:
            others.append(self.token_burst())
        w_tasks = [asyncio.ensure_future(c) for c in writers]
        o_tasks = [asyncio.ensure_future(c) for c in others]
        far = time.monotonic() + seconds + 600
        p_tasks = [asyncio.ensure_future(self.poll(p, deadline=far)) for p in self.pollers]
        if controller is not None:
            await asyncio.gather(asyncio.sleep(seconds), controller)
        else:
            await asyncio.sleep(seconds)
        ran = time.monotonic() - self.started
        self.stop.set()
        await self._finish(w_tasks + o_tasks, grace)
        self.writers_done.set()
        done, pending = await asyncio.wait(p_tasks, timeout=grace)
        for t in pending:
            t.cancel()
            self.findings.append(Finding("feed", f"a poller did not reach the end of the feed in {grace:.0f} s"))
        for t in done:
            if t.exception() is not None:
                self.findings.append(Finding("harness", f"a poller failed: {t.exception()!r}"))
        return ran

    async def _finish(self, tasks: list[asyncio.Future[Any]], grace: float) -> None:
        done, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            self.hard_stop.set()
            done2, pending = await asyncio.wait(pending, timeout=grace)
            done |= done2
        for t in pending:
            t.cancel()
        if pending:
            self.findings.append(Finding("bounded", f"{len(pending)} client loops had not ended {2 * grace:.0f} s "
                                                    "after the stop (cancelled)"))
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                self.findings.append(Finding("harness", f"a client loop failed: {exc!r}"))

    async def finish_checks(self) -> None:
        """The last verifications: the whole chain, and against the checkpoint of the start."""
        for _ in range(20):
            if await self.verify_once() is not None:
                break
            await asyncio.sleep(0.5)
        else:
            self.findings.append(Finding("chain", "the final audit verification got no answer"))
        if self.checkpoint is not None:
            for _ in range(20):
                ok = await self.verify_once(self.checkpoint)
                if ok is not None:
                    break
                await asyncio.sleep(0.5)


# --- the summary -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def summary(samples: list[Sample], seconds: float) -> list[dict[str, Any]]:
    """Per kind: requests, answered with 2xx, rate, p50 and p99 (ms), and the statuses."""
    by: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by[s.kind].append(s)
    rows = []
    for kind in sorted(by):
        ss = by[kind]
        lat = [s.latency * 1000 for s in ss if s.status is not None]
        statuses = Counter(str(s.status) if s.status is not None else s.error or "?" for s in ss)
        rows.append({"kind": kind, "n": len(ss), "ok": sum(1 for s in ss if s.status is not None and s.status < 300),
                     "rate": len(ss) / seconds if seconds else 0.0, "p50": percentile(lat, 0.5),
                     "p99": percentile(lat, 0.99), "statuses": dict(statuses)})
    return rows


def format_summary(rows: list[dict[str, Any]], seconds: float) -> str:
    total = sum(r["n"] for r in rows)
    lines = [f"{total:,} requests in {seconds:.1f} s ({total / seconds if seconds else 0:,.1f}/s)", "",
             f"{'kind':<22}{'requests':>9}{'2xx':>8}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}  statuses"]
    for r in rows:
        st = " ".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"{r['kind']:<22}{r['n']:>9}{r['ok']:>8}{r['rate']:>8.1f}{r['p50']:>9.1f}{r['p99']:>9.1f}  {st}")
    return "\n".join(lines)


# --- the checks --------------------------------------------------------------------------------


def _group_outcome(ops: list[Op]) -> str:
    outs = {o.outcome for o in ops}
    return "ok" if "ok" in outs else "unknown" if "unknown" in outs else "failed"


def _said(ops: list[Op]) -> str:
    """What the clients were told, for a finding's message."""
    parts = []
    for op in ops:
        parts.append(" → ".join(f"{s}{' ' + t.rsplit('/', 1)[-1] if t else ''}" for _, s, t, _ in op.attempts))
    return "; ".join(parts)


def check(load: Load, conninfo: str, *, no_5xx: bool = True, feed_key: str = "61") -> list[Finding]:
    """The consistency checks, over everything ``load`` did so far, against the database.

    * ``5xx``: (with ``no_5xx``) no reply of 500 or more, and no request without an answer;
    * ``feed``: the feed's positions are 1..N with no gap; each poller saw exactly the events
      up to its last position, in position order, none twice, its positions strictly
      increasing, and it reached the end of the feed;
    * ``events``: every committed change has its one event (records created and updated,
      referrals and their moves, notices, acknowledgements, follow-ups) and no event is
      without its change; the events of one write are contiguous; writes are in the feed in
      the order they committed (a write answered before another was sent comes first);
    * ``chain``: every verification during the run and the final ones (whole chain, and from
      the checkpoint of the start) said ok;
    * ``batch``: every batch all or nothing (0 or all of its records, or of its updates);
    * ``duplicate``: no create written twice (keyed retries and concurrent duplicates
      included), ``If-Match`` lets one of two concurrent moves win at most;
    * ``outcome``: what a client was told failed, or changed nothing, left nothing; what it was
      told succeeded is there;
    * ``audit``: no request recorded both as allowed and as failed; ``audit-status``: a failure
      recorded with the status the client was answered, and a call answered outcome-unknown
      not recorded as failed; ``audit-lost``: every answered ``/v1`` call (2xx, 4xx, and a 503
      that said nothing was changed) audited.
    """
    out = list(load.findings)
    add = lambda check_, msg: out.append(Finding(check_, msg))  # noqa: E731

    if no_5xx:
        bad = [s for s in load.samples if s.status is None or s.status >= 500]
        if bad:
            c = Counter((s.kind, s.status if s.status is not None else s.error) for s in bad)
            ex = next((s for s in bad if s.status is not None), bad[0])
            add("5xx", f"{len(bad)} requests answered 5xx or not at all: "
                       f"{', '.join(f'{k} {st}: {n}' for (k, st), n in c.most_common(8))}; e.g. {ex.path} "
                       f"{ex.status or ex.error} {ex.ptype or ''} {ex.detail or ''}".strip())

    tag = load.run_tag
    with psycopg.connect(conninfo) as conn:
        q = lambda sql, *a: conn.execute(sql, a).fetchall()  # noqa: E731
        events = q("SELECT pos, id::text, type, data FROM event WHERE key = %s ORDER BY pos", feed_key)
        returnees = q("SELECT source_ref, id::text, version, employer FROM returnee WHERE source_ref LIKE %s",
                      f"BENCH-{tag}-%")
        referrals = q("SELECT id::text, note FROM referral WHERE note LIKE %s", f"soak {tag} %")
        ref_ids = [r[0] for r in referrals]
        history = q("SELECT referral_id::text, action FROM referral_history WHERE referral_id::text = ANY(%s) "
                    "AND action <> 'request'", ref_ids)
        notices = q("SELECT id::text, summary, acknowledged_at IS NOT NULL FROM notice WHERE summary LIKE %s",
                    f"soak {tag} %")
        follow_ups = q("SELECT id::text, note FROM notice_follow_up WHERE note LIKE %s", f"soak {tag} %")
        rids = sorted({a[0] for op in load.ops for a in op.attempts if a[0]} | {s.request_id for s in load.samples})
        # the X-Request-ID each call sent is kept beside the server's own id, as the caller's
        # correlation id (api/http/middleware.py)
        audit_rows = q("SELECT body::jsonb->'detail'->>'caller_request_id', outcome, body FROM audit_event "
                       "WHERE body::jsonb->'detail'->>'caller_request_id' = ANY(%s)", rids)

    # --- the feed
    positions = [e[0] for e in events]
    if positions and positions != list(range(1, len(positions) + 1)):
        gaps = [(a, b) for a, b in zip(positions, positions[1:], strict=False) if b != a + 1]
        add("feed", f"the feed's positions are not contiguous from 1: first {positions[0]}, gaps {gaps[:5]}")
    db_ids = [e[1] for e in events]
    for p in load.pollers:
        if len(set(p.ids)) != len(p.ids):
            add("feed", f"{p.name} got {len(p.ids) - len(set(p.ids))} events twice")
        if p.ids != db_ids[: len(p.ids)]:
            first = next((i for i, (a, b) in enumerate(zip(p.ids, db_ids, strict=False)) if a != b), min(len(p.ids), len(db_ids)))
            add("feed", f"{p.name} saw a different sequence than the feed holds from its event {first + 1} on "
                        f"(missed or out of order; it saw {len(p.ids)}, the feed holds {len(db_ids)})")
        elif len(p.ids) < len(db_ids):
            add("feed", f"{p.name} stopped at {len(p.ids)} of the feed's {len(db_ids)} events")
        if any(b <= a for a, b in zip(p.positions, p.positions[1:], strict=False)):
            add("feed", f"{p.name}'s positions did not strictly increase")
        if p.positions and p.positions[-1] != len(p.ids):
            add("feed", f"{p.name}: its last position {p.positions[-1]} is not the count of events it saw {len(p.ids)}")

    # --- events against the changes they describe
    ev_pos: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for pos, _id, typ, data in events:
        d = orjson.loads(data)
        if typ.startswith("returnee."):
            k: tuple[str, ...] = (typ, d.get("source_ref", ""))
        elif typ == "referral.status_changed":
            k = (typ, d.get("id", ""), d.get("action", ""))
        elif typ == "notice.follow_up_recorded":
            k = (typ, d.get("follow_up_id", ""))
        else:
            k = (typ, d.get("id", ""))
        ev_pos[k].append(pos)
    expected: set[tuple[str, ...]] = set()
    for ref, _id, version, _employer in returnees:
        expected.add(("returnee.created", ref))
        if version >= 2:
            expected.add(("returnee.updated", ref))
    for rid, _ in referrals:
        expected.add(("referral.requested", rid))
    hist_count = Counter((rid, action) for rid, action in history)
    for (rid, action), n in hist_count.items():
        expected.add(("referral.status_changed", rid, action))
        if n > 1:
            add("duplicate", f"referral {rid} went through '{action}' {n} times")
    for nid, _, acked in notices:
        expected.add(("notice.created", nid))
        if acked:
            expected.add(("notice.acknowledged", nid))
    for fid, _ in follow_ups:
        expected.add(("notice.follow_up_recorded", fid))
    missing = [k for k in expected if k not in ev_pos]
    stray = [k for k in ev_pos if k not in expected]
    twice = [k for k, v in ev_pos.items() if len(v) > 1]
    if missing:
        add("events", f"{len(missing)} committed changes have no event, e.g. {sorted(missing)[:3]}")
    if stray:
        add("events", f"{len(stray)} events describe no committed change, e.g. {sorted(stray)[:3]}")
    if twice:
        add("events", f"{len(twice)} changes have more than one event, e.g. {sorted(twice)[:3]}")
    for ref, _id, version, _ in returnees:
        if version > 2:
            add("duplicate", f"record {ref} was written {version} times (at most one create and one update were sent)")

    # --- ops against what is stored
    groups: dict[int, list[Op]] = defaultdict(list)
    for op in load.ops:
        groups[op.group].append(op)
    have_ref = {r[0]: r for r in returnees}
    by_note = Counter(r[1] for r in referrals)
    ref_by_note: dict[str, list[str]] = defaultdict(list)
    for rid, note in referrals:
        ref_by_note[note].append(rid)
    notice_by_summary: dict[str, list[str]] = defaultdict(list)
    for nid, summary_, _ in notices:
        notice_by_summary[summary_].append(nid)
    acked = {nid: a for nid, _, a in notices}
    fu_by_note: dict[str, list[str]] = defaultdict(list)
    for fid, note in follow_ups:
        fu_by_note[note].append(fid)
    del by_note

    spans: list[tuple[float, float, int, int, str]] = []  # (sent, done, min pos, max pos, what) of ok writes
    moves: dict[tuple[str, str], list[str]] = defaultdict(list)  # (referral, action) -> group outcomes
    acks: dict[str, list[str]] = defaultdict(list)

    def keys_positions(keys: list[tuple[str, ...]]) -> list[int]:
        return sorted(p for k in keys for p in ev_pos.get(k, []))

    for ops in groups.values():
        kind, outcome = ops[0].kind, _group_outcome(ops)
        keys: list[tuple[str, ...]] = []
        what = f"{kind} {ops[0].marker}"
        if kind.startswith("batch"):
            refs = ops[0].info["refs"]
            if kind == "batch.update":
                tag_ = ops[0].info["tag"]
                have = sum(1 for r in refs if r in have_ref and have_ref[r][3] == tag_)
                keys = [("returnee.updated", r) for r in refs]
            else:
                have = sum(1 for r in refs if r in have_ref)
                keys = [("returnee.created", r) for r in refs]
            n = len(refs)
            if 0 < have < n:
                add("batch", f"{what}: {have} of its {n} records written (a partial batch); the client was told: {_said(ops)}")
            elif outcome == "ok" and have != n:
                add("outcome", f"{what}: answered ok but none of its {n} records is stored")
            elif outcome == "failed" and have:
                add("outcome", f"{what}: the client was told {_said(ops)}, but the batch was written")
            if have == n:
                ps = keys_positions(keys)
                if ps and ps[-1] - ps[0] + 1 != len(ps):
                    add("events", f"{what}: its {len(ps)} events are not contiguous ({ps[0]}..{ps[-1]})")
        elif kind in ("referral.create", "notice.create", "notice.follow_up"):
            table = {"referral.create": ref_by_note, "notice.create": notice_by_summary,
                     "notice.follow_up": fu_by_note}[kind]
            rows = table.get(ops[0].marker, [])
            typ = {"referral.create": "referral.requested", "notice.create": "notice.created",
                   "notice.follow_up": "notice.follow_up_recorded"}[kind]
            keys = [(typ, r) for r in rows]
            if len(rows) > 1:
                add("duplicate", f"{what}: written {len(rows)} times ({'keyed' if ops[0].keyed else 'no key'}); "
                                 f"the client was told: {_said(ops)}")
            elif outcome == "ok" and not rows:
                add("outcome", f"{what}: answered {ops[0].reply.status if ops[0].reply else '?'} but not stored")
            elif outcome == "failed" and rows:
                add("outcome", f"{what}: the client was told {_said(ops)}, but it was written")
            if outcome == "ok":
                got_ids = {o.reply.body.get("id") for o in ops if o.outcome == "ok" and isinstance(o.reply.body, dict)}
                if rows and not got_ids <= set(rows):
                    add("outcome", f"{what}: the reply's id is not the stored one")
        elif kind == "referral.transition":
            rid, action = ops[0].info["id"], ops[0].info["action"]
            wins = sum(1 for o in ops if o.outcome == "ok")
            if wins > 1:
                add("duplicate", f"{what}: {wins} moves with the same If-Match both succeeded")
            moves[(rid, action)].append(outcome)
            keys = [("referral.status_changed", rid, action)]
        elif kind == "notice.ack":
            nid = ops[0].info["id"]
            wins = sum(1 for o in ops if o.outcome == "ok")
            if wins > 1:
                add("duplicate", f"notice {nid}: {wins} acknowledgements with the same If-Match both succeeded")
            acks[nid].append(outcome)
            keys = [("notice.acknowledged", nid)]
        if outcome == "ok" and keys:
            ps = keys_positions(keys)
            if ps:
                done = min(o.t_done for o in ops if o.outcome == "ok")
                spans.append((min(o.t_sent for o in ops), done, ps[0], ps[-1], what))

    for (rid, action), outs in moves.items():
        n = hist_count.get((rid, action), 0)
        if "ok" in outs and n == 0:
            add("outcome", f"referral {rid}: '{action}' was answered ok but is not in its history")
        if all(o == "failed" for o in outs) and n:
            said = _said([op for op in load.ops if op.kind == "referral.transition" and op.info.get("id") == rid
                          and op.info.get("action") == action])
            add("outcome", f"referral {rid}: '{action}' is in its history, but the client was told: {said}")
    for nid, outs in acks.items():
        if "ok" in outs and not acked.get(nid):
            add("outcome", f"notice {nid}: acknowledged ok but not stored")
        if all(o == "failed" for o in outs) and acked.get(nid):
            said = _said([op for op in load.ops if op.kind == "notice.ack" and op.info.get("id") == nid])
            add("outcome", f"notice {nid} is acknowledged, but the client was told: {said}")

    # commit order: a write answered before another was sent has the earlier positions
    spans.sort(key=lambda s: s[1])
    done_times = [s[1] for s in spans]
    prefix_max: list[tuple[int, str]] = []
    best: tuple[int, str] = (0, "")
    for s in spans:
        if s[3] > best[0]:
            best = (s[3], s[4])
        prefix_max.append(best)
    disorder = []
    for sent, _done, lo, _hi, what in spans:
        i = bisect_left(done_times, sent) - 1
        if i >= 0 and prefix_max[i][0] >= lo:
            disorder.append(f"{what} (from {lo}) after {prefix_max[i][1]} (up to {prefix_max[i][0]})")
    if disorder:
        add("events", f"{len(disorder)} writes are in the feed before a write that was answered before they "
                      f"were sent, e.g. {disorder[:2]}")

    # --- the chain
    if not load.verifies:
        add("chain", "no audit verification was answered")
    elif any(ok is not True for _, ok, _ in load.verifies[-2:]):
        add("chain", f"the final verifications did not both say ok: {load.verifies[-2:]}")

    # --- the audit of each request
    by_rid: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for rid, outcome_, body in audit_rows:
        try:
            detail = orjson.loads(body).get("detail", {})
        except ValueError:
            detail = {}
        by_rid[rid].append((outcome_, detail.get("status")))
    both = [rid for rid, es in by_rid.items() if {"allowed", "failed"} <= {e[0] for e in es}]
    if both:
        add("audit", f"{len(both)} requests are recorded as allowed and as failed, e.g. {both[:2]}")
    wrong_status = []
    unaudited = []
    for s in load.samples:
        if s.status is None or not s.path.startswith("/v1"):
            continue
        es = by_rid.get(s.request_id, [])
        # a 503 that says nothing was changed is a failure the audit records (through the
        # spool while the database is away); an unknown outcome is not recorded as one
        told_failed = s.status == 503 and not _unknown_type(s.ptype)
        if (s.status < 500 and s.status not in (401, 429) or told_failed) and not es:
            unaudited.append(f"{s.kind} {s.status}")
        if _unknown_type(s.ptype) and any(o == "failed" for o, _ in es):
            wrong_status.append(f"{s.kind}: recorded failed, answered {s.status} outcome-unknown")
        for outcome_, st in es:
            if outcome_ != "allowed" and st is not None and st != s.status:
                wrong_status.append(f"{s.kind}: recorded {st}, answered {s.status}")
    if wrong_status:
        add("audit-status", f"{len(wrong_status)} failed calls are recorded with another status than they were answered "
                     f"with, e.g. {Counter(wrong_status).most_common(2)}")
    if unaudited:
        add("audit-lost", f"{len(unaudited)} answered calls have no audit entry, e.g. {Counter(unaudited).most_common(3)}")
    return out


def ops_summary(load: Load) -> str:
    groups: dict[int, list[Op]] = defaultdict(list)
    for op in load.ops:
        groups[op.group].append(op)
    c = Counter((ops[0].kind, _group_outcome(ops)) for ops in groups.values())
    kinds = sorted({k for k, _ in c})
    return "writes (logical, duplicates counted once): " + ", ".join(
        f"{k} {c[(k, 'ok')]} ok" + (f" / {c[(k, 'failed')]} failed" if c[(k, "failed")] else "")
        + (f" / {c[(k, 'unknown')]} unknown" if c[(k, "unknown")] else "") for k in kinds)
