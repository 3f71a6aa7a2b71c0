"""Denials of unauthenticated callers, audited per source and minute.

Every denied request is audited, but a flood of them must not take the chain head (and on
SQLite the database's one write lock) for everyone: 135 bad tokens a second used to be 135
chain appends a second. So a refusal of a caller who has not authenticated — ``401`` (no
token, a bad one, an unknown, disabled or revoked client) or ``429`` (rate limited) — is
recorded by this rule:

* The **first** refusal of a ``(source, client id, minute)`` — source being the client address
  of the connection, the client id the one its token named, if the token verified — is written
  to the chain as its own entry, exactly as any failed request is
  (:func:`api.core.audit.record_failure`).
* The **later** ones of that same source, client and minute are only counted, in this
  process's memory; nothing is written for them while the minute lasts.
* When the minute has closed, one entry ``auth.denied.summary`` (outcome ``denied``) says how
  many there were: ``count`` (every refusal of that source, client and minute, the individually
  written one included), ``recorded_individually``, ``statuses`` (count per HTTP status) and
  ``minute``; the source is the entry's ``ip``, the client its ``client_id``. It is written at
  the next refusal after the minute (of any source), by a sweep every few seconds, or when the
  server stops — whichever comes first. No summary is written when there was only the one.
* At most ``rate_audit_sources`` (source, client) pairs per minute get entries of their own;
  refusals of further pairs in that minute (a flood from many addresses) are only counted,
  together, and summarised in one entry with ``overflow: true`` and the number of pairs.

So a minute of refusals costs at most ``2 × rate_audit_sources + 1`` chain entries per
process, however many requests it held, and the audit still says who was refused how often.
With several server processes each process keeps its own tallies (each writes at most its own
first entry and summary per pair and minute). What the rule gives up: a process that dies
(``kill -9``, power loss) loses the counts of its open minutes (the first refusal of each pair
is on the chain already); refused requests after the first carry no request id of their own.

Authenticated callers (a ``403``, a ``404``) are audited one entry per request as before: they
are rate limited per client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from api.core import audit, clock
from api.core.context import AuditRecord, RequestContext
from api.core.db import Database
from models import Outcome

log = logging.getLogger("sinergi.denials")

SUMMARY_ACTION = "auth.denied.summary"
AGGREGATED_STATUSES = frozenset({401, 429})
SWEEP_SECONDS = 5.0
_OVERFLOW = ("*", None)  # the shared tally of the pairs past the per-minute limit
_MAX_MERGED = 100_000  # distinct pairs the shared tally tells apart (memory bound)


def aggregated(ctx: RequestContext, status: int) -> bool:
    """Whether a failed request is recorded by this module's rule rather than one entry each."""
    return ctx.caller is None and status in AGGREGATED_STATUSES


@dataclass(slots=True)
class _Tally:
    count: int = 0
    written: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    merged: set[tuple[str | None, str | None]] | None = None  # overflow tally: the pairs it merges


def _minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


class DenialLedger:
    """One process's tallies of the open minutes: minute -> (source, client) -> tally."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.limit = db.settings.rate_audit_sources
        self._minutes: dict[datetime, dict[tuple[str | None, str | None], _Tally]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def record(self, ctx: RequestContext, exc: BaseException, status: int) -> None:
        """Record one refusal (see the module's rule)."""
        minute = _minute(clock.now())
        if any(m < minute for m in self._minutes):
            await self.flush(before=minute)
        tallies = self._minutes.setdefault(minute, {})
        pair = (ctx.ip, ctx.claimed_client_id)
        tally = tallies.get(pair)
        first = False
        if tally is None:
            if len(tallies) - (_OVERFLOW in tallies) < self.limit:
                tally = tallies[pair] = _Tally()
                first = True
            else:
                tally = tallies.get(_OVERFLOW)
                if tally is None:
                    tally = tallies[_OVERFLOW] = _Tally(merged=set())
                if tally.merged is not None and len(tally.merged) < _MAX_MERGED:
                    tally.merged.add(pair)
        tally.count += 1
        tally.statuses[status] += 1
        if not first:
            return
        tally.written += 1  # before the write: a flush meanwhile must not summarise it again
        try:
            await audit.record_failure(self.db, ctx, exc, status)
        except Exception as failure:  # the database itself may be what failed; the log still has it
            # the type only: a database error's text carries the statement's parameters
            log.error("could not record a refused request in the audit chain: %s", type(failure).__name__,
                      extra={"request_id": ctx.request_id})

    async def flush(self, before: datetime | None = None) -> None:
        """Write the summaries of the minutes before ``before`` (of every minute when None)."""
        closed = [m for m in self._minutes if before is None or m < before]
        summaries = [(m, pair, t) for m in closed for pair, t in self._minutes.pop(m).items() if t.count > t.written]
        if summaries:
            await self._write(summaries)

    async def _write(self, summaries: Iterable[tuple[datetime, tuple[str | None, str | None], _Tally]]) -> None:
        items = list(summaries)
        try:
            entries = []
            for minute, (source, client), t in items:
                overflow = (source, client) == _OVERFLOW
                ctx = RequestContext(ip=None if overflow else source, claimed_client_id=client, route=SUMMARY_ACTION)
                detail = {
                    "minute": minute.strftime("%Y-%m-%dT%H:%MZ"),
                    "count": t.count,
                    "recorded_individually": t.written,
                    "statuses": {str(s): n for s, n in sorted(t.statuses.items())},
                }
                if overflow:
                    pairs = len(t.merged or ())
                    detail.update(overflow=True, pairs=pairs if pairs < _MAX_MERGED else f">={pairs}")
                entries.append((ctx, AuditRecord(action=SUMMARY_ACTION, outcome=Outcome.denied, detail=detail)))
            await audit.append_outside_unit(self.db, entries)
        except Exception as failure:  # the counts are not lost to the operator: the log has them
            lost = [(m.isoformat(), s, c, t.count) for m, (s, c), t in items]
            log.error("could not write denial summaries to the audit chain (%s): %s", type(failure).__name__, lost)

    # --- the sweep -------------------------------------------------------------------------

    def start(self) -> None:
        """Sweep closed minutes every few seconds (so a source that stops still gets its
        summary soon after its minute)."""
        self._sweeper = asyncio.create_task(self._sweep(), name="sinergi-denial-sweep")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.flush(before=_minute(clock.now()))
            except Exception as failure:  # pragma: no cover - _write logs its own failures
                log.error("denial sweep failed: %s", type(failure).__name__)

    async def stop(self) -> None:
        """Stop the sweep and write what is still open (the server is stopping)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        await self.flush()
