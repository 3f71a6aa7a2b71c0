"""Rate limits: per client for authenticated calls, per source for everything else.

What is counted (settings ``SINERGI_RATE_*``; each a number of requests per ``rate_window``
seconds, 0 turns it off):

* ``rate_client`` — the requests of one API client, keyed by the client id of its *verified*
  token (a forged token cannot spend another client's allowance). Counted in
  :func:`api.http.auth.authenticate` right after the signature check.
* ``rate_source`` — refused authentication attempts of one source (the client address of the
  connection): no bearer token, or one that does not verify. A source over this limit is
  answered 429 instead of 401 until its rate falls; a caller from the same address with a
  valid token is counted as its client, so a flood from a shared address does not lock out
  the partner behind it.
* ``rate_token`` — requests to ``/oauth/token`` and ``/oauth/revoke`` of one source, counted
  by :class:`RateLimitMiddleware` before the route runs (secrets are guessed there).
* ``rate_public`` — requests to the routes anyone may read without a token (the public warning
  list, :data:`PUBLIC_PATHS`) of one source, counted the same way.

Over a limit the reply is ``429`` problem+json (``/problems/too-many-requests``) with
``Retry-After``: the whole seconds until a request would be allowed again if the caller sent
nothing more. Refused requests count too, so a caller that keeps hammering stays refused.

The window is a sliding window, approximated from two fixed windows as most gateways do: the
estimate is ``current + previous × (share of the previous window still inside the sliding
one)``. It needs two counters per key and never lets more than the limit through in any
window-long span, up to the approximation (it assumes the previous window's requests were
spread evenly).

Where the counters live:

* **PostgreSQL**: in the ``rate_limit_counter`` table, shared by every server process on the
  database, so the limits hold for the cluster as a whole. One statement per check::

      WITH cur AS (INSERT … VALUES (:key, :window, 1)
                   ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1 RETURNING count)
      SELECT cur.count, (previous window's count) FROM cur

  The upsert is atomic, so two processes can never both see the same count. The table is
  ``UNLOGGED`` (no WAL flush), and the statement runs in *autocommit* on a connection that is
  held for that one statement: a counter row's lock is released at once instead of at the
  end of the request (otherwise one client's concurrent requests would queue behind each
  other). That connection is taken from the pool only while the request holds **no**
  connection (the check runs before the request's session has executed anything — in the
  middleware, or in ``authenticate`` before its client lookup), so a request never waits for
  a second pooled connection while holding one: the pool cannot deadlock on itself. Should a
  request's session already hold a connection, the statement runs on that connection instead
  (correct; the row then stays locked until the request ends). Old windows are deleted by
  each process once per window.
* **SQLite** (the embedded, single-process default): in this process's memory. Nothing is
  written to the database, so the limiter adds no write-lock contention. With several server
  processes on one SQLite file each process counts for itself (the limits are per process).

The limiter fails open: if the counter cannot be read (the database is down), the request goes
on and meets the database itself, which answers for it (503).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from api.core import clock
from api.core.context import RequestContext
from api.core.db import Database
from api.core.errors import PROBLEM_JSON, Problem

log = logging.getLogger("sinergi.ratelimit")

# Routes counted per source before they run: they authenticate clients by their secret.
TOKEN_PATHS = {"/oauth/token": "token.issue", "/oauth/revoke": "token.revoke"}
# Routes anyone may call without a token, counted per source before they run.
PUBLIC_PATHS = {"/v1/public/warnings": "warning.public"}
# path -> (route name, counter kind, the setting of its limit, what the 429 says)
SOURCE_LIMITED = {
    **{path: (name, "token", "rate_token", "token requests from this address") for path, name in TOKEN_PATHS.items()},
    **{path: (name, "public", "rate_public", "requests to the public routes from this address")
       for path, name in PUBLIC_PATHS.items()},
}


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, retry_after: int, what: str, *, oauth: bool = False) -> None:
        detail = f"Too many {what}; retry after {retry_after} seconds"
        # The token endpoints' errors follow RFC 6749 §5.2: their 429 problem also carries
        # ``error`` / ``error_description`` (``temporarily_unavailable``, RFC 6749's code for a
        # server that cannot answer for now), so an OAuth client reports it as it reports
        # the endpoint's other errors.
        extra: dict[str, Any] = {"error": "temporarily_unavailable", "error_description": detail} if oauth else {}
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after, **extra)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds; set when not allowed


def judge(limit: int, window: int, elapsed: float, current: int, previous: int) -> Verdict:
    """The sliding-window decision for a request already counted in ``current``, ``elapsed``
    seconds into the current fixed window (``limit`` >= 1)."""
    remaining = window - elapsed
    if current + previous * remaining / window <= limit:
        return Verdict(True)
    # The next request would count as current + 1; when does the estimate let it through?
    nxt = current + 1
    if nxt <= limit:  # later in this window, once enough of the previous one has slid out
        wait = remaining - window * (limit - nxt) / previous if previous else 0.0
    else:  # in the next window, where this window's count is the previous one
        wait = remaining + window * (1 - (limit - 1) / current)
    return Verdict(False, max(1, math.ceil(wait)))


def counter_key(kind: str, who: str | None) -> str:
    """``kind:who``, with an over-long ``who`` (a client address is at most 45 characters, a
    client id 64) replaced by its digest so a key always fits the column."""
    who = who or "unknown"
    if len(who) > 100:
        who = "sha256:" + hashlib.sha256(who.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{who}"


class Limiter(Protocol):
    async def hit(self, key: str, limit: int, session: AsyncSession | None = None) -> Verdict:
        """Count one request of ``key`` and judge it against ``limit`` (0: no limit).
        ``session``: the request's, if it may already hold a connection."""
        ...


class MemoryLimiter:
    """This process's counters (SQLite): key -> [window_start, current, previous]."""

    MAX_KEYS = 100_000  # beyond this, keys idle for a whole window are forgotten (then the oldest)

    def __init__(self, window: int) -> None:
        self.window = window
        self._counts: dict[str, list[int]] = {}

    async def hit(self, key: str, limit: int, session: AsyncSession | None = None) -> Verdict:
        if limit <= 0:
            return Verdict(True)
        now = clock.now().timestamp()
        w = self.window
        start = int(now // w * w)
        slot = self._counts.get(key)
        if slot is None:
            if len(self._counts) >= self.MAX_KEYS:
                self._prune(start)
            slot = self._counts[key] = [start, 0, 0]
        if slot[0] != start:
            slot[2] = slot[1] if slot[0] == start - w else 0
            slot[0], slot[1] = start, 0
        slot[1] += 1
        return judge(limit, w, now - start, slot[1], slot[2])

    def _prune(self, start: int) -> None:
        stale = [k for k, (s, _c, _p) in self._counts.items() if s < start - self.window]
        if len(stale) < self.MAX_KEYS // 10:  # a flood from very many addresses: forget the oldest
            stale += list(self._counts)[: self.MAX_KEYS // 10]
        for k in dict.fromkeys(stale):
            self._counts.pop(k, None)


_PG_HIT = sa.text(
    """
    WITH cur AS (
        INSERT INTO rate_limit_counter AS c (key, window_start, count) VALUES (:key, :start, 1)
        ON CONFLICT (key, window_start) DO UPDATE SET count = c.count + 1
        RETURNING c.count
    )
    SELECT cur.count,
           COALESCE((SELECT p.count FROM rate_limit_counter p WHERE p.key = :key AND p.window_start = :prev), 0)
      FROM cur
    """
)
_PG_PURGE = sa.text("DELETE FROM rate_limit_counter WHERE window_start < :before")


class PostgresLimiter:
    """Counters in ``rate_limit_counter``, shared by every process on the database."""

    def __init__(self, db: Database, window: int) -> None:
        self.db = db
        self.window = window
        self._purged = 0  # the window this process last purged old counters in
        self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def hit(self, key: str, limit: int, session: AsyncSession | None = None) -> Verdict:
        if limit <= 0:
            return Verdict(True)
        now = clock.now().timestamp()
        w = self.window
        start = int(now // w * w)
        params = {"key": key, "start": start, "prev": start - w}
        try:
            if session is not None and session.in_transaction():
                row = (await session.execute(_PG_HIT, params)).one()  # on the connection it holds
            else:
                async with self._autocommit.connect() as conn:
                    row = (await conn.execute(_PG_HIT, params)).one()
                    if self._purged != start:
                        self._purged = start
                        await conn.execute(_PG_PURGE, {"before": start - w})
        except Exception as exc:  # fail open: the request meets the database itself
            log.warning("rate limit counter unavailable: %s", type(exc).__name__)
            return Verdict(True)
        return judge(limit, w, now - start, int(row[0]), int(row[1]))


def make_limiter(db: Database) -> Limiter:
    window = db.settings.rate_window
    return PostgresLimiter(db, window) if db.dialect == "postgresql" else MemoryLimiter(window)


class RateLimitMiddleware:
    """Counts the token endpoints and the public routes per source before their route (and its
    session) runs, so
    the counter's connection is never a request's second one. A refused request is audited
    like any denial of an unauthenticated caller (aggregated, :mod:`api.http.denials`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = SOURCE_LIMITED.get(scope.get("path", "")) if scope["type"] == "http" else None
        svc: Any = getattr(getattr(scope.get("app"), "state", None), "services", None)
        if limited is None or svc is None or svc.limiter is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        # the client address RequestMiddleware found (the socket's, or a trusted proxy's X-Forwarded-For)
        source = scope.get("state", {}).get("client_ip", client[0] if client else None)
        name, kind, setting, what = limited
        verdict = await svc.limiter.hit(counter_key(kind, source), getattr(svc.settings, setting))
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        exc = TooManyRequests(verdict.retry_after, what, oauth=kind == "token")
        if svc.denials is not None:
            ctx = RequestContext(request_id=scope.get("state", {}).get("request_id"), ip=source, route=name)
            await svc.denials.record(ctx, exc, 429)
        await _send_problem(send, exc, scope.get("path"))


async def _send_problem(send: Send, exc: Problem, instance: str | None) -> None:
    payload = orjson.dumps(exc.body(instance))
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
