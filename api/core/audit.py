"""The audit chain: recording, appending, verifying, listing.

Each entry's hash is ``sha256(prev_hash "\\n" seq "\\n" body)``, ``body`` being the canonical
JSON (sorted keys, orjson) of everything the entry says. One chain per province (``chain``):
appenders serialise on the chain's head row inside the business transaction, so chain order is
commit order, and appenders of different provinces never wait on each other.

On PostgreSQL the entries a commit appends are ONE statement, a call of the database's function
``sinergi_audit_append`` (migration 0017) sent with the COMMIT: the head is advanced, the entries
hashed (``sha256()`` in the database) and inserted in the same round trip, so the head's row lock
is held only for that statement and the commit. On SQLite every transaction already holds the database's
write lock (``BEGIN IMMEDIATE``), so the hash is computed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import operator
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import bulk, clock, spool, tokens
from api.core import text as text_rules
from api.core.context import AuditRecord, RequestContext
from api.core.db import Database, driver_connection, driver_error, driver_sql
from api.core.errors import Problem
from api.core.keys import KeyStore
from api.core.sql import dialect_of, table_of
from api.core.unit import unit_of
from models import GENESIS_HASH, AuditEvent, AuditHead, AuditSubject, Outcome
from models.regions import province_of

log = logging.getLogger("sinergi.audit")


def record(
    session: AsyncSession,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: Any = None,
    subjects: Sequence[tuple[str, Any]] = (),
    outcome: Outcome = Outcome.allowed,
    **detail: Any,
) -> None:
    """Record an audit entry in ``session``'s unit (see :meth:`api.core.unit.Unit.audit`);
    it is written with the unit's transaction. Outside a unit this raises."""
    unit_of(session).audit(action, resource_type=resource_type, resource_id=resource_id, subjects=subjects,
                           outcome=outcome, **detail)


def chain_of(ctx: RequestContext, default_chain: str) -> str:
    """The caller's province's chain; ``default_chain`` (the settings' ``audit_chain``) for
    callers without one (the operator, the command line, an unauthenticated request)."""
    if ctx.caller is not None:
        return province_of(ctx.caller.jurisdiction) or default_chain
    return default_chain


def chain_hash(prev_hash: str, seq: int, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{seq}\n{body}".encode()).hexdigest()


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class _Row:
    id: uuid.UUID
    occurred_at: datetime
    client_id: str | None
    agency: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    outcome: str
    request_id: str | None
    body: str
    subjects: list[tuple[str, str]]


_EVENTS = table_of(AuditEvent)
_HEADS = table_of(AuditHead)


def _width(table: sa.Table, column: str) -> int:
    return int(getattr(table.c[column].type, "length", None) or text_rules.MAX_ID)


# The indexed columns an entry fills, and how wide each is.
_WIDTHS = {name: _width(table_of(AuditEvent), name)
           for name in ("client_id", "agency", "action", "resource_type", "resource_id", "request_id")}
_SUBJECT_WIDTHS = (_width(table_of(AuditSubject), "resource_type"), _width(table_of(AuditSubject), "resource_id"))
_MAX_DEPTH = 4


def _bounded_detail(value: Any, depth: int = 0) -> Any:
    """A detail value as an entry keeps it: text bounded, lists and objects cut to
    ``MAX_DETAIL_ITEMS`` (saying how many there were), integers beyond 64 bits as text."""
    limit, items = text_rules.MAX_DETAIL_TEXT, text_rules.MAX_DETAIL_ITEMS
    if isinstance(value, str):
        return text_rules.bounded(value, limit)
    if value is None or isinstance(value, bool | float | uuid.UUID | datetime | date):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else text_rules.bounded(str(value), limit)
    if depth >= _MAX_DEPTH:
        return text_rules.bounded(repr(value), limit)
    if isinstance(value, dict):
        pairs = list(value.items())
        out = {text_rules.bounded(str(k), text_rules.MAX_ID): _bounded_detail(v, depth + 1) for k, v in pairs[:items]}
        if len(pairs) > items:
            out["…"] = f"{len(pairs)} items"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        cut = [_bounded_detail(v, depth + 1) for v in seq[:items]]
        if len(seq) > items:
            cut.append(f"…[{len(seq)} items]")
        return cut
    return text_rules.bounded(str(value), limit)


def _build(chain: str, ctx: RequestContext, rec: AuditRecord, now: datetime, entry_id: uuid.UUID | None = None) -> _Row:
    """One entry. What it says is bounded, whatever the caller sent: the indexed columns hold
    only what the service knows (the authenticated client, its agency, ids the service made or
    checked); anything else a caller claims goes into ``detail`` under ``claimed_*``, bounded
    (:mod:`api.core.text`). An officer's entry says who (``officer``, the console session's
    officer id, beside the agency); a partner's call naming the person behind it says so as
    ``on_behalf_of``, bounded: claimed, never verified. Entries without either keep the body
    they always had."""
    caller = ctx.caller
    detail: dict[str, Any] = _bounded_detail(dict(rec.detail))
    client_id = caller.client_id if caller else ctx.client_id
    if ctx.claimed_client_id is not None and ctx.claimed_client_id != client_id:
        detail["claimed_client_id"] = text_rules.bounded(str(ctx.claimed_client_id), text_rules.MAX_ID)
    # Before a caller exists (the token endpoint), the client's agency is in the record itself.
    agency = caller.agency if caller else rec.detail.get("agency_code")
    if ctx.scope_used and "scope" not in detail:
        detail["scope"] = text_rules.bounded(ctx.scope_used, text_rules.MAX_DETAIL_TEXT)
    if ctx.ip:
        detail.setdefault("ip", text_rules.bounded(ctx.ip, text_rules.MAX_ID))
    if ctx.caller_request_id:
        detail.setdefault("caller_request_id", text_rules.bounded(ctx.caller_request_id, text_rules.MAX_DETAIL_TEXT))
    columns: dict[str, Any] = {"client_id": client_id, "agency": agency, "action": rec.action,
                               "resource_type": rec.resource_type, "resource_id": rec.resource_id,
                               "request_id": ctx.request_id}
    for name, value in columns.items():
        if value is not None and not text_rules.is_identifier(value, _WIDTHS[name]):
            detail[f"claimed_{name}"] = text_rules.bounded(str(value), text_rules.MAX_ID)
            columns[name] = None
    if columns["action"] is None:  # NOT NULL; every action the service names is an identifier
        columns["action"] = "request"
    subjects, claimed = [], []
    for t, i in dict.fromkeys(rec.subjects):
        if text_rules.is_identifier(t, _SUBJECT_WIDTHS[0]) and text_rules.is_identifier(i, _SUBJECT_WIDTHS[1]):
            subjects.append((t, i))
        else:
            claimed.append([text_rules.bounded(str(t), text_rules.MAX_ID), text_rules.bounded(str(i), text_rules.MAX_ID)])
    if claimed:
        detail["claimed_subjects"] = _bounded_detail(claimed)
    row = _Row(entry_id or uuid.uuid4(), now, columns["client_id"], columns["agency"], columns["action"], columns["resource_type"],
               columns["resource_id"], str(rec.outcome), columns["request_id"], "", subjects)
    people: dict[str, str] = {}
    if caller is not None and caller.officer is not None:  # proven: a console session
        people["officer"] = text_rules.bounded(caller.officer, text_rules.MAX_ID)
    if ctx.claimed_user is not None:  # what a partner system says; kept apart from "officer"
        people["on_behalf_of"] = text_rules.bounded(ctx.claimed_user, text_rules.MAX_ID)
    row.body = orjson.dumps(
        {
            **people,
            "id": str(row.id),
            "chain": chain,
            "occurred_at": _iso(now),
            "client_id": row.client_id,
            "agency": row.agency,
            "action": row.action,
            "resource_type": row.resource_type,
            "resource_id": row.resource_id,
            "outcome": row.outcome,
            "request_id": row.request_id,
            "subjects": [list(s) for s in subjects],
            "detail": detail,
        },
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    ).decode()
    return row


# The chain's append on PostgreSQL: ONE call of the database function made by migration 0017
# (``sinergi_audit_append``), whatever the number of entries: it writes the entries' subjects
# still to be written, takes the chain's head (made from the genesis if the chain has none yet: no
# head can be missing), links the entries in their order by the chain's rule (:func:`chain_hash`,
# its one SQL copy being that function's), inserts them and moves the head; it returns how many
# entries it appended. The entries go as one JSON array: one parameter, not thirteen an entry
# (formatting those on this side was a third of a group's append; the statement it took had to be
# parsed again for every group size).
_PG_APPEND_CALL = "SELECT sinergi_audit_append(%s, %s, %s, %s)"


def _pg_append_params(staged: Staged, subjects: Sequence[dict[str, Any]]) -> tuple[str, str, str, str]:
    # the columns every append writes (its "chain" key is ignored by the function: it takes p_chain)
    entries = [_append_params(staged.chain, row) for row in staged.rows]
    return staged.chain, GENESIS_HASH, orjson.dumps(subjects).decode(), orjson.dumps(entries).decode()


async def _pg_append(session: AsyncSession, staged: Staged, *, commit: bool, conn: AsyncConnection | None = None,
                     before: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
    """The staged entries (and their subjects left to write) appended on PostgreSQL by the
    database's function, on the session's connection, in its transaction, after the writes
    ``before`` (``text()`` SQL and its values); with ``commit``, the COMMIT goes with them, in
    one round trip; if a statement fails, those after it, the COMMIT among them, are not run
    and the transaction is rolled back.

    With writes ``before``, all of it goes in one pipeline (psycopg's pipeline mode): their
    values stay parameters, never SQL text, so PostgreSQL's log of a failed statement holds
    none of what they write (a batch's records). The append alone goes as one simple query, its
    values merged on this side (entries hold no personal data, and a pipeline costs this side
    more than the one message: the reads' group commit takes this way)."""
    subjects, staged.subjects = staged.subjects, []
    raw = await driver_connection(conn or await session.connection())
    try:
        if not before:
            if not staged.rows:  # nothing to send (append_and_commit commits through the session then)
                return
            single = psycopg.AsyncClientCursor(raw)
            await single.execute(_PG_APPEND_CALL + ("; COMMIT" if commit else ""), _pg_append_params(staged, subjects))
            done = await single.fetchone()  # the first result's: the append's
        else:
            async with raw.pipeline():
                writes, append = raw.cursor(), raw.cursor()
                for sql, params in before:
                    await writes.execute(driver_sql(sql), params)
                if staged.rows:
                    await append.execute(_PG_APPEND_CALL, _pg_append_params(staged, subjects))
                if commit:
                    await writes.execute("COMMIT")
            done = await append.fetchone() if staged.rows else (0,)
    except psycopg.Error as exc:  # as SQLAlchemy's handlers would have it: redacted, wrapped
        raise driver_error(exc) from None
    if done is None or done[0] != len(staged.rows):  # pragma: no cover - the function raises rather than skip
        raise RuntimeError("audit entries not appended")


async def _ensure_head(session: AsyncSession, chain: str) -> None:
    table = table_of(AuditHead)
    stmt = pg_insert(table) if dialect_of(session) == "postgresql" else sqlite_insert(table)
    await session.execute(
        stmt.values(chain=chain, seq=0, hash=GENESIS_HASH, prev_hash=GENESIS_HASH).on_conflict_do_nothing()
    )


def _append_params(chain: str, row: _Row) -> dict[str, Any]:
    return {
        "chain": chain,
        "id": row.id,
        "occurred_at": row.occurred_at,
        "client_id": row.client_id,
        "agency": row.agency,
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "outcome": row.outcome,
        "request_id": row.request_id,
        "body": row.body,
    }


@dataclass(slots=True)
class Staged:
    """Entries built and their subjects written, not yet on the chain (see :func:`stage`);
    ``subjects``: those not written yet (``stage(..., defer_subjects=True)``), written by
    :func:`append_staged` or :func:`append_and_commit` before the entries."""

    chain: str
    rows: list[_Row]
    subjects: list[dict[str, Any]] = field(default_factory=list)


async def stage(
    session: AsyncSession, ctx: RequestContext, records: Sequence[AuditRecord], default_chain: str,
    *, defer_subjects: bool = False,
) -> Staged:
    """First half of :func:`append`: build the entries and write their subjects. Needs no
    chain lock, so a unit does it before it takes any head (events', then audit's). With
    ``defer_subjects`` (a unit that takes no other head) the subjects are written with the
    entries instead, still before the chain's head is locked."""
    chain = chain_of(ctx, default_chain)
    now = clock.now()
    rows = [_build(chain, ctx, r, now) for r in records]
    subjects = [{"event_id": row.id, "resource_type": t, "resource_id": i} for row in rows for t, i in row.subjects]
    if defer_subjects:
        return Staged(chain, rows, subjects)
    if subjects:  # written before the head is locked: they need no order
        await bulk.insert_rows(session, table_of(AuditSubject), subjects)
    return Staged(chain, rows)


async def append(
    session: AsyncSession, ctx: RequestContext, records: Sequence[AuditRecord], default_chain: str
) -> None:
    """Append ``records`` to the caller's chain inside ``session``'s transaction."""
    if not records:
        return
    await append_staged(session, await stage(session, ctx, records, default_chain))


async def append_staged(session: AsyncSession, staged: Staged) -> None:
    """Second half of :func:`append`: put the staged entries on the chain (locks its head)."""
    if dialect_of(session) == "postgresql":
        await _pg_append(session, staged, commit=False)
        return
    chain = staged.chain
    if staged.subjects:
        await bulk.insert_rows(session, table_of(AuditSubject), staged.subjects)
        staged.subjects = []
    heads = table_of(AuditHead)
    for row in staged.rows:
        found = (await session.execute(sa.select(heads.c.seq, heads.c.hash).where(heads.c.chain == chain))).first()
        if found is None:
            await _ensure_head(session, chain)
        seq, prev = (found[0], found[1]) if found is not None else (0, GENESIS_HASH)
        seq += 1
        digest = chain_hash(prev, seq, row.body)
        await session.execute(sa.update(heads).where(heads.c.chain == chain).values(seq=seq, prev_hash=prev, hash=digest))
        await session.execute(sa.insert(table_of(AuditEvent)).values(
            **_append_params(chain, row), seq=seq, prev_hash=prev, hash=digest))


async def append_and_commit(session: AsyncSession, staged: Staged, conn: AsyncConnection | None = None, *,
                            before: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
    """:func:`append_staged`, then COMMIT. On PostgreSQL the append (every entry, and the
    subjects left to write (``defer_subjects``): one call of the database's function) goes to
    the server with the COMMIT in one round trip, after the unit's last writes ``before``
    (``text()`` SQL and its values: the change positions, the events, what a service sent with
    the COMMIT), so the heads' row locks are held for PostgreSQL's own time only, not for a
    round trip through a busy event loop: writers of one list, feed or chain queue behind each
    other for less. What is committed is exactly what the steps commit; if one fails, the COMMIT
    sent with it is not run (the transaction is aborted, and rolled back). ``conn``: the
    session's connection, when the caller has it. Elsewhere ``before`` must be empty."""
    if dialect_of(session) != "postgresql":
        if before:
            raise ValueError("writes sent with the COMMIT are PostgreSQL's")
        await append_staged(session, staged)
        await session.commit()
        return
    if staged.rows or before:
        await _pg_append(session, staged, commit=True, conn=conn, before=before)
    await session.commit()  # the session's own bookkeeping (or its COMMIT); the connection has committed


@dataclass(slots=True)
class _Waiting:
    """A read's entries, waiting for a unit of the same process to append them (or to append
    them itself): :func:`commit_read`."""

    staged: Staged
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Group:
    """The reads of one chain in one process waiting for their entries to be appended, and the
    lock held by the unit appending them."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: list[_Waiting] = field(default_factory=list)


# Per event loop and engine: a group's futures and lock belong to the loop they were made in.
_GROUPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], _Group]] = \
    weakref.WeakKeyDictionary()


async def commit_read(session: AsyncSession, staged: Staged, conn: AsyncConnection | None = None) -> None:
    """Commit a PostgreSQL unit that wrote nothing (a read: its transaction sent only
    ``SELECT`` statements) with its audit entries, appended together with those of the other reads of
    the same chain that are committing in this process at the same time: a group commit.

    The first read of a chain to get there appends its entries and commits, in its own
    transaction (:func:`append_and_commit`), as every unit does. A read that finds another read
    appending waits: the next read to take the chain's lock appends, in its own transaction and
    one round trip, the entries of every read then waiting, and each of them ends its own
    transaction (it wrote nothing) once the transaction holding its entries has committed.
    So a read's reply still leaves only after its entries are in the chain, the chain's order
    is still the order of commits, and the reads that commit together wait for the head and
    for the disk once, not each. If that transaction fails, it fails for each of them (each
    raises the same error, whose outcome the unit judges as for its own COMMIT). Every wait is
    a database wait of one of them, bounded as each is (api.core.db): a read waits at most for
    the append in progress and for the one holding its entries. ``conn``: the session's
    connection, when the caller has it."""
    conn = conn or await session.connection()
    key = (id(conn.engine.sync_engine), staged.chain)
    groups = _GROUPS.setdefault(asyncio.get_running_loop(), {})
    group = groups.get(key)
    if group is None:
        group = groups[key] = _Group()
    if not group.lock.locked() and not group.waiting:
        async with group.lock:  # nobody else committing a read of the chain: as any unit
            await _append_group(session, group, staged, conn)
        return
    me = _Waiting(staged, asyncio.get_running_loop().create_future())
    group.waiting.append(me)
    try:
        async with group.lock:
            if not me.done.done():  # not appended by the read before: append what is waiting now
                group.waiting.remove(me)
                await _append_group(session, group, staged, conn)
                return
    except asyncio.CancelledError:  # the request is gone before its entries were taken: no reply, no entry
        if me in group.waiting:
            group.waiting.remove(me)
        me.done.cancel()
        raise
    await me.done  # raises as the append holding the entries did
    await session.commit()  # the read's own transaction, which wrote nothing


def waiting_reads() -> int:
    """How many reads of this process (its running event loop) wait for their entries to be
    appended by another (:func:`commit_read`)."""
    groups = _GROUPS.get(asyncio.get_running_loop(), {})
    return sum(len(g.waiting) for g in groups.values())


async def _append_group(session: AsyncSession, group: _Group, own: Staged, conn: AsyncConnection) -> None:
    """Append ``own`` and the entries of every read waiting in ``group``, then commit; settle
    the waiting reads' futures with the outcome (the lock held)."""
    waiting, group.waiting = group.waiting, []
    parts = [own, *(w.staged for w in waiting)]
    staged = Staged(parts[0].chain, [row for p in parts for row in p.rows],
                    [subject for p in parts for subject in p.subjects])
    try:
        await append_and_commit(session, staged, conn)
    except BaseException as exc:
        # a cancelled append (its request gone) may have committed or not: unknown to the others
        shared = exc if isinstance(exc, Exception) else RuntimeError("the append of these entries was interrupted")
        for w in waiting:
            if not w.done.done():
                w.done.set_exception(shared)
        raise
    for w in waiting:
        if not w.done.done():
            w.done.set_result(None)


def outcome_of(exc: BaseException, status: int | None = None) -> tuple[Outcome, int]:
    """How a failed request is recorded: ``status`` is what the caller was answered (the HTTP
    layer knows it for errors that are not a :class:`Problem`)."""
    if status is None:
        status = getattr(exc, "status", None) or getattr(exc, "status_code", None) or 500
    return (Outcome.denied if status in (401, 403, 404) else Outcome.failed), int(status)


async def record_failure(db: Database, ctx: RequestContext, exc: BaseException, status: int | None = None) -> None:
    """After a request failed and its transaction rolled back: record only the failure.

    Whatever the request held, the entry is bounded: the path's values are kept as
    ``claimed_path`` (each cut to ``MAX_ID``), and the ``id`` (or ``code``) among them is the
    entry's ``resource_id`` only when it has the form of an id."""
    outcome, status = outcome_of(exc, status)
    detail: dict[str, Any] = {"status": status}
    if isinstance(exc, Problem) and exc.slug:
        detail["problem"] = exc.slug
        if exc.errors:
            detail["fields"] = [str(e.get("field", "")) for e in exc.errors]
    if ctx.path_params:
        detail["claimed_path"] = {str(k): text_rules.bounded(str(v), text_rules.MAX_ID)
                                  for k, v in list(ctx.path_params.items())[: text_rules.MAX_DETAIL_ITEMS]}
    rid = ctx.path_params.get("id") or ctx.path_params.get("code")
    rid = None if rid is None else str(rid)
    rec = AuditRecord(
        action=ctx.route or "request",
        outcome=outcome,
        resource_id=rid if text_rules.is_identifier(rid, _WIDTHS["resource_id"]) else None,
        detail=detail,
    )
    # What the request had recorded before it failed names the resources it was about, and a
    # refusal it had recorded (a wrong client secret, a scope not granted) stays a refusal.
    for earlier in ctx.audit:
        rec.resource_type = rec.resource_type or earlier.resource_type
        rec.resource_id = rec.resource_id or earlier.resource_id
        rec.subjects.extend(s for s in earlier.subjects if s not in rec.subjects)
        if earlier.outcome == Outcome.denied:  # its reasons too (bounded when the entry is built)
            rec.outcome = Outcome.denied
            for key, value in earlier.detail.items():
                detail.setdefault(key, value)
    ctx.audited = True
    # Not a unit: what the failed request had queued (its entries, its events) must not be
    # written, only this one entry, appended explicitly.
    await append_outside_unit(db, [(ctx, rec)])


async def append_outside_unit(db: Database, entries: Sequence[tuple[RequestContext, AuditRecord]]) -> None:
    """Append entries that belong to no unit of work (a request that failed and rolled back,
    the per-minute summaries of refused callers), each with its own context, in one
    transaction of their own. With :func:`drain_spool`, the second half of this failure path,
    the only sessions of the service opened outside api.core.unit and the HTTP session
    dependency (tests/test_units.py checks it).

    When the database cannot take them (the failure was the database's), they are written to
    the spool (the settings' ``audit_spool``, :mod:`api.core.spool`), to be appended when it is
    back (:func:`drain_spool`); without a spool the error is raised (and the caller logs it)."""
    now = clock.now()
    staged = [Staged(chain, [_build(chain, ctx, rec, now)])
              for ctx, rec in entries for chain in (chain_of(ctx, db.settings.audit_chain),)]
    try:
        async with db.sessionmaker() as session, session.begin():
            await _append_rows(session, staged)
    except Exception:
        path = db.settings.audit_spool
        if not path:
            raise
        # Marked as written late: the detail says so (the entry's place in the chain is when
        # it was appended, its occurred_at when it happened). Same ids: if the transaction
        # above did commit (its COMMIT's answer lost), the drain finds them there and skips them.
        late = [Staged(st.chain, [_build(st.chain, ctx, AuditRecord(rec.action, rec.outcome, rec.resource_type,
                                                                    rec.resource_id, rec.subjects,
                                                                    {**rec.detail, "spooled": True}),
                                         now, st.rows[0].id)])
                for (ctx, rec), st in zip(entries, staged, strict=True)]
        await spool.write(path, [_to_spool(st.chain, row) for st in late for row in st.rows])
        log.warning("the database could not take %d audit entries: spooled", len(late))


async def _append_rows(session: AsyncSession, staged: Sequence[Staged]) -> None:
    subjects = [{"event_id": row.id, "resource_type": t, "resource_id": i}
                for st in staged for row in st.rows for t, i in row.subjects]
    if subjects:
        await bulk.insert_rows(session, table_of(AuditSubject), subjects)
    for st in staged:
        await append_staged(session, st)


def _to_spool(chain: str, row: _Row) -> dict[str, Any]:
    return {"chain": chain, "id": str(row.id), "occurred_at": _iso(row.occurred_at), "client_id": row.client_id,
            "agency": row.agency, "action": row.action, "resource_type": row.resource_type,
            "resource_id": row.resource_id, "outcome": row.outcome, "request_id": row.request_id,
            "body": row.body, "subjects": [list(x) for x in row.subjects]}


def _from_spool(d: dict[str, Any]) -> Staged:
    occurred = datetime.strptime(d["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    row = _Row(uuid.UUID(d["id"]), occurred, d["client_id"], d["agency"], d["action"], d["resource_type"],
               d["resource_id"], d["outcome"], d["request_id"], d["body"], [(t, i) for t, i in d["subjects"]])
    return Staged(d["chain"], [row])


def spool_check(db: Database) -> None:
    """After the database took a unit: if entries wait in the spool, drain it in the background
    (at most one drain per process at a time; the spool is looked at once a second at most)."""
    path = db.settings.audit_spool
    if path and spool.due(path):
        task = asyncio.get_running_loop().create_task(drain_spool(db))
        _DRAINS.add(task)
        task.add_done_callback(_DRAINS.discard)


_DRAINS: set[asyncio.Task[int]] = set()


async def drain_spool(db: Database) -> int:
    """Append the entries that waited in the spool, each once (an entry already in the chain,
    from a drain that committed and then could not clear its file, is not appended again).
    Returns how many were appended; what cannot be appended now stays for the next drain."""
    path = db.settings.audit_spool
    if not path:
        return 0
    appended = 0
    async with contextlib.aclosing(spool.batches(path)) as batches:
        async for batch in batches:
            appended += await _drain_one(db, batch)
            if batch.fd < 0:  # kept: the database is not taking entries yet
                break
    if appended:
        log.warning("%d audit entries from the spool appended to the chain", appended)
    return appended


async def _drain_one(db: Database, batch: spool.Batch) -> int:
    staged = []
    for d in batch.entries:
        try:
            staged.append(_from_spool(d))
        except (KeyError, TypeError, ValueError):
            log.error("audit spool %s: an entry that is not one the service wrote: skipped", batch.file)
    ids = [st.rows[0].id for st in staged]
    try:
        async with db.sessionmaker() as session, session.begin():
            there = set((await session.execute(sa.select(_EVENTS.c.id).where(_EVENTS.c.id.in_(ids)))).scalars())
            todo = [st for st in staged if st.rows[0].id not in there]
            await _append_rows(session, todo)
    except BaseException as exc:
        batch.keep()
        if not isinstance(exc, Exception):
            raise
        log.warning("the audit spool could not be written into the chain yet: %s", type(exc).__name__)
        return 0
    batch.done()
    return len(todo)


# --- reading -------------------------------------------------------------------------------


@dataclass(slots=True)
class VerifyResult:
    chain: str
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    reason: str | None
    from_seq: int = 1  # the first entry read: 1, or a checkpoint's entry


_COLUMNS = ("id", "occurred_at", "client_id", "agency", "action", "resource_type", "resource_id", "outcome", "request_id")

# Where the chain is read: a request's session (its own connection, in its transaction), a
# connection, or the database (a connection of its own: the command line, the benchmark).
Source = Database | SAAsyncSession | AsyncConnection


@asynccontextmanager
async def _reading(source: Source) -> AsyncIterator[AsyncConnection]:
    if isinstance(source, Database):
        async with source.read() as conn:
            yield conn
    elif isinstance(source, SAAsyncSession):
        yield await source.connection()
    else:
        yield source


async def _stream_rows(conn: AsyncConnection, chain: str, first: int, upto: int) -> AsyncIterator[tuple[Any, ...]]:
    stmt = (
        sa.select(
            _EVENTS.c.seq, _EVENTS.c.prev_hash, _EVENTS.c.hash, _EVENTS.c.body,
            *(_EVENTS.c[c] for c in _COLUMNS),
        )
        .where(_EVENTS.c.chain == chain, _EVENTS.c.seq >= first, _EVENTS.c.seq <= upto)
        .order_by(_EVENTS.c.seq)
        .execution_options(yield_per=5000)
    )
    result = await conn.stream(stmt)
    async for row in result:
        yield tuple(row)


async def verify(source: Source, chain: str, expect: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the chain: contiguous sequence numbers, each ``prev_hash`` equal to the previous
    entry's hash, each hash recomputed from its body, the indexed columns equal to what the
    body says, and the last entry equal to the head (a deleted tail is noticed too). One
    connection (``source``'s) for all of it.

    ``expect`` is a checkpoint ``(seq, hash)`` kept elsewhere (signed by the service). The walk
    then starts AT the checkpoint and reads nothing before it: the checkpoint's entry must still
    hold that hash (which catches a rewrite that recomputed every hash), and every entry after
    it must link up to the head. What lies before the checkpoint was proven when the checkpoint
    was taken; ``from_seq`` of the result says where the walk began."""
    async with _reading(source) as conn:  # the head first: what is appended after it is not checked
        row = (await conn.execute(sa.select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.chain == chain))).first()
        head_seq, head_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)
        walker = _Walker(chain, expect)
        first = 1
        if expect is not None:
            cp_seq, cp_hash = expect
            if head_seq < cp_seq:
                return VerifyResult(chain, False, 0, head_seq, head_hash, head_seq + 1,
                                    f"the chain ends at {head_seq}, before the checkpoint at {cp_seq}", cp_seq)
            if cp_seq == 0 and cp_hash != GENESIS_HASH:
                return VerifyResult(chain, False, 0, head_seq, head_hash, 1,
                                    "the checkpoint's start differs from the chain's: the chain was rewritten", 1)
            if cp_seq >= 1:
                first = cp_seq
                walker.start_at(cp_seq)
        if conn.dialect.name == "postgresql":
            await _walk_postgres(conn, chain, first, head_seq, walker)
        else:
            async for entry in _stream_rows(conn, chain, first, head_seq):
                if not walker.check(entry):
                    break
    bad, prev_hash, expected_seq, checked = walker.bad, walker.prev_hash, walker.expected_seq, walker.checked
    if bad is None and (head_seq != expected_seq - 1 or head_hash != (prev_hash or GENESIS_HASH)):
        bad = (expected_seq, f"the chain ends at {expected_seq - 1} but its head is at {head_seq}")
    return VerifyResult(chain, bad is None, checked, head_seq, head_hash,
                        bad[0] if bad else None, bad[1] if bad else None, first)


class _Walker:
    """The checks of :func:`verify`, one entry at a time, in chain order. ``check`` takes a row
    ``(seq, prev_hash, hash, body, *_COLUMNS)`` with the columns as SQLAlchemy returns them
    (``id`` a UUID, ``occurred_at`` a datetime); ``check_text`` takes them as their canonical
    text (``id`` as ``str(UUID)``, ``occurred_at`` as ``_iso``), followed by the row's chain."""

    __slots__ = ("chain", "expect", "bad", "prev_hash", "expected_seq", "checked")

    def __init__(self, chain: str, expect: tuple[int, str] | None) -> None:
        self.chain, self.expect = chain, expect
        self.bad: tuple[int, str] | None = None
        # None: the next entry's own prev_hash is taken as it is (the walk starts at a checkpoint)
        self.prev_hash: str | None = GENESIS_HASH
        self.expected_seq, self.checked = 1, 0

    def start_at(self, seq: int) -> None:
        """Begin at entry ``seq`` (a checkpoint's), whose predecessor is not read: its link
        back is taken as it is, its own hash is checked against the checkpoint."""
        self.prev_hash, self.expected_seq = None, seq

    def _links(self, seq: int, row_prev: str, row_hash: str, body: str) -> bool:
        expected_seq = self.expected_seq
        if seq != expected_seq:
            self.bad = (expected_seq, f"entry {expected_seq} is missing (found {seq})")
        elif self.prev_hash is not None and row_prev != self.prev_hash:
            self.bad = (seq, "prev_hash does not match the previous entry")
        elif chain_hash(row_prev, seq, body) != row_hash:
            self.bad = (seq, "hash does not match the entry's content")
        elif self.expect is not None and seq == self.expect[0] and row_hash != self.expect[1]:
            self.bad = (seq, "the entry differs from the checkpoint: the chain was rewritten")
        return self.bad is None

    def _columns(self, seq: int, doc: Any, values: Sequence[Any], as_text: bool = False) -> bool:
        for name, value in zip(_COLUMNS, values, strict=True):
            # as text, a NULL occurred_at is a time out of Python's range (the column is NOT NULL)
            if doc.get(name) != value or (as_text and value is None and name == "occurred_at"):
                self.bad = (seq, f"column {name} differs from the hashed content")
                return False
        if doc.get("chain") != self.chain:
            self.bad = (seq, "entry belongs to another chain")
            return False
        return True

    def check(self, row: Sequence[Any]) -> bool:
        seq, row_prev, row_hash, body = row[0], row[1], row[2], row[3]
        self.checked += 1
        if not self._links(seq, row_prev, row_hash, body):
            return False
        values = list(row[4:])
        values[0] = str(values[0])  # id
        values[1] = _iso(values[1]) if values[1] else None  # occurred_at
        if not self._columns(seq, orjson.loads(body), values):
            return False
        self.prev_hash, self.expected_seq = row_hash, seq + 1
        return True

    def check_text(self, rows: Sequence[Sequence[Any]]) -> bool:
        """Rows ``(seq, prev_hash, hash, body, *_COLUMNS as text, chain)``; the row's ``chain``
        is the chain selected (``WHERE chain = :chain``), so the body's ``chain`` is compared
        with it in the same tuple comparison as the columns. Anything unusual (a check that
        fails, a body without one of the keys, or not an object) goes through the
        column-by-column path, which names the first difference as :meth:`check` does."""
        sha256, loads, getter = hashlib.sha256, orjson.loads, _DOC_VALUES
        expect_seq = self.expect[0] if self.expect is not None else -1
        prev_hash, expected_seq = self.prev_hash, self.expected_seq
        checked = 0
        ok = True
        for row in rows:
            seq, row_prev, row_hash, body = row[0], row[1], row[2], row[3]
            doc = loads(body)
            try:
                same = (seq == expected_seq and row_prev == prev_hash and seq != expect_seq
                        and sha256(f"{row_prev}\n{seq}\n{body}".encode()).hexdigest() == row_hash
                        and getter(doc) == row[4:] and row[5] is not None)
            except (KeyError, TypeError):
                same = False
            if not same:
                self.prev_hash, self.expected_seq, self.checked = prev_hash, expected_seq, self.checked + checked
                checked = 0
                self.checked += 1
                if not (self._links(seq, row_prev, row_hash, body) and self._columns(seq, doc, row[4:-1], True)):
                    ok = False
                    break
                prev_hash, expected_seq = row_hash, seq + 1
                continue
            checked += 1
            prev_hash, expected_seq = row_hash, seq + 1
        if ok:
            self.prev_hash, self.expected_seq = prev_hash, expected_seq
        self.checked += checked
        return ok


_DOC_VALUES = operator.itemgetter(*_COLUMNS, "chain")

# ``id`` and ``occurred_at`` as the text ``str(UUID)`` and ``_iso`` give: PostgreSQL's uuid output
# is the same lower-case, hyphenated form; ``occurred_at`` (a timestamptz) is formatted in UTC, the
# year unpadded as strftime's ``%Y`` writes it. A time Python cannot hold (before year 1, after
# 9999, infinite), which the row-by-row reading could not load at all, comes back NULL and is
# reported as a column that differs from the body.
_PG_VERIFY_SQL = """
    SELECT seq, prev_hash, hash, body, id::text,
           CASE WHEN occurred_at >= '0001-01-01 00:00:00+00' AND occurred_at < '10000-01-01 00:00:00+00'
                THEN to_char(occurred_at AT TIME ZONE 'UTC', 'FMYYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
           client_id, agency, action, resource_type, resource_id, outcome, request_id, chain
      FROM audit_event
     WHERE chain = %(chain)s AND seq >= %(first)s AND seq <= %(upto)s
     ORDER BY seq
"""


_VERIFY_BATCH = 10_000


async def _walk_postgres(conn: AsyncConnection, chain: str, first: int, upto: int, walker: _Walker) -> None:
    """The chain's rows from ``first`` through ``upto``, through a psycopg server-side cursor on
    ``conn``'s driver connection (in its transaction), in batches of 10,000, the columns as text
    (no UUID or datetime objects to build per row)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None  # a live pooled connection
    cur = driver.cursor(name=f"sinergi_verify_{uuid.uuid4().hex[:8]}")
    try:
        await cur.execute(_PG_VERIFY_SQL, {"chain": chain, "first": first, "upto": upto})
        size = _VERIFY_BATCH
        rows = await cur.fetchmany(size)
        while rows:
            # PostgreSQL reads and sends the next batch while this one is checked in a worker
            # thread (the hashing and parsing are Python work; the wait is not)
            following = asyncio.ensure_future(cur.fetchmany(size)) if len(rows) == size else None
            try:
                ok = await asyncio.to_thread(walker.check_text, rows)
            finally:
                if following is not None and not following.done():
                    await asyncio.wait([following])
            if not ok:
                if following is not None:
                    following.exception()  # retrieved: the walk stops at the first bad entry
                break
            rows = following.result() if following is not None else []
    finally:
        await cur.close()


async def head(source: Source, chain: str) -> tuple[int, str]:
    async with _reading(source) as conn:
        row = (await conn.execute(sa.select(_HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.chain == chain))).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


async def chains(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(sa.select(_HEADS.c.chain).order_by(_HEADS.c.chain))).scalars())


# --- checkpoints -----------------------------------------------------------------------------


async def make_checkpoint(session: AsyncSession, keys: KeyStore, issuer: str,
                          chain: str) -> tuple[tokens.Checkpoint, str]:
    """The chain's head now, signed: keep it outside the database and verify against it later.
    Read on ``session`` (the request's)."""
    seq, digest = await head(session, chain)
    kid, signer = await keys.signing_key(session)
    now = clock.now()
    signed = tokens.sign_checkpoint(signer=signer, kid=kid, issuer=issuer, chain=chain, seq=seq, hash=digest, now=now)
    return tokens.Checkpoint(chain, seq, digest, int(now.timestamp())), signed


async def read_checkpoint(keys: KeyStore, issuer: str, signed: str,
                          session: AsyncSession | None = None) -> tokens.Checkpoint:
    """A checkpoint this service signed (with any key it ever had), else :class:`BadCheckpoint`.
    Its key is read on ``session`` (the request's), else on a connection of the key store's."""
    try:
        key = await keys.archived_verifier(tokens.checkpoint_kid(signed), session)
        if key is None:
            raise tokens.InvalidToken("The checkpoint was signed by a key this service never had")
        return tokens.verify_checkpoint(signed, key, issuer=issuer)
    except tokens.InvalidToken as exc:
        raise BadCheckpoint(str(exc)) from None


class BadCheckpoint(Problem):
    status, slug, title = 422, "bad-checkpoint", "The checkpoint is not valid"
