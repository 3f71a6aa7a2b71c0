"""``Idempotency-Key`` for creating POSTs (API.md, Conventions).

The same key and the same request from the same client replays the first reply (with
``Idempotent-Replayed: true``); the same key with a different request is ``422``; the same key
while the first request is still running is ``409``. The record is written in the request's own
transaction, so a request that fails leaves no record and can simply be retried. Records are
kept :data:`RETENTION` (at least 24 hours), by the database's clock: the record's times are
written and its expiry checked with the database's ``CURRENT_TIMESTAMP``, so a server whose
own clock is wrong (a day ahead) neither re-runs a live key nor keeps a dead one.

After an unknown outcome
------------------------
When the answer to a request's COMMIT is lost (503 ``/problems/outcome-unknown``), its record
was in the same transaction: a retry under the same key finds it and replays the reply if the
work was committed, and does the work (once) if it was not. On PostgreSQL the key's advisory
lock is held by the first transaction until the server has finished it, so a retry that comes
while the lost COMMIT is still being carried out is a ``409`` ("still being processed"), never
a second run.

A replay never shows more than a fresh request would
------------------------------------------------------
A client's tokens need not all hold the same scopes, and what a reply shows depends on some of
them: with ``pii:read`` a referral's reply shows the subject's phone number, without it the
number is masked. So the record keeps, beside the reply, the *view scopes*
(:data:`VIEW_SCOPES`) the first caller held. A retry by a token that lacks one of them does
not get the stored reply: it gets a ``422`` problem (:class:`ReplayNeedsScopes`, naming the
missing scopes, as :attr:`Idempotency.replay`) and nothing changes; the first request did its
work, so the client reads the result afresh (a ``GET`` shows it as this token may see it) or
retries with a token that holds the scopes. Refusing, rather than masking the stored reply again, keeps one rule for every
route: a route's reply is remembered as it was sent, and no route has to know how to produce
its reply for another caller. A retry holding more scopes than the first caller gets the
stored reply, which shows no more than the first caller saw. Scopes that decide *whether* a
route may be called are checked before :func:`begin`, on every retry, like any request.

The replay is audited
---------------------
A replay discloses the first reply again, so its audit entry names what the first request's
entries named: the record keeps their resource and subjects, and the replay's entry (the
route's action, ``replay: true``) carries them. A refused replay is recorded the same way,
``denied``, with the missing scopes.

What is stored
--------------
One envelope, encrypted like personal data (the reply may hold some): ``{"reply", "view",
"resource_type", "resource_id", "subjects"}``, under its own encryption context. Records
written before the envelope (the reply alone, under the older context) are read as replies
given to a caller holding every view scope, with no resource: never shown to less.

Usage in a route::

    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        return idem.replay
    ...
    idem.remember(session, 201, body)
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import orjson
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import crypto
from api.core.context import AuditRecord, Caller
from api.core.errors import Conflict, Problem
from api.core.scopes import Scope
from api.core.sql import database_now, dialect_of
from api.core.unit import unit_of
from api.http.problems import problem_response
from models import IdempotencyRecord, Outcome

RETENTION = timedelta(hours=48)
HEADER = "Idempotency-Key"
_RECORD = "idempotency.record"  # the envelope (reply, view, resources)
_LEGACY = "idempotency.response"  # the reply alone, as records were written before the envelope

# The scopes that change what a reply shows (not whether the route may be called).
VIEW_SCOPES: tuple[Scope, ...] = (Scope.pii_read,)


async def _declared(
    key: Annotated[str | None, Header(
        alias=HEADER, description="1 to 255 printable characters: the same key and request replays the first "
        "reply (`Idempotent-Replayed: true`), the same key with another request is 422, while the first is "
        "still running 409")] = None,
) -> None:
    """Declares the header in the OpenAPI document; :func:`begin` reads and checks it."""


# ``dependencies=[idempotency.KEY]`` on a route that calls :func:`begin`.
KEY = Depends(_declared)


class IdempotencyMismatch(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another request"


class ReplayNeedsScopes(Problem):
    status, slug, title = 422, "idempotency-replay-needs-scopes", "The stored reply shows more than this token may see"


class BadIdempotencyKey(Problem):
    status, slug, title = 400, "bad-idempotency-key", "Idempotency-Key is not valid"


def view_of(caller: Caller, scopes: Iterable[Scope] = VIEW_SCOPES) -> list[str]:
    """The view scopes ``caller`` holds."""
    return sorted(str(s) for s in scopes if caller.has(s))


@dataclass
class _Stored:
    reply: str
    view: list[str]
    resource_type: str | None = None
    resource_id: str | None = None
    subjects: list[tuple[str, str]] = field(default_factory=list)


def _resources(records: list[AuditRecord]) -> dict[str, Any]:
    """What the request's audit entries so far name (allowed ones): the first resource, and
    every subject once."""
    allowed = [r for r in records if r.outcome == Outcome.allowed]
    rtype = next((r.resource_type for r in allowed if r.resource_type), None)
    rid = next((r.resource_id for r in allowed if r.resource_id), None)
    subjects = list(dict.fromkeys((t, i) for r in allowed for t, i in r.subjects))
    return {"resource_type": rtype, "resource_id": rid, "subjects": [list(s) for s in subjects]}


def _open(ciphertext: str, key: bytes) -> _Stored:
    try:
        envelope = orjson.loads(crypto.decrypt(ciphertext, context=_RECORD, key=key))
    except InvalidTag:  # written before the envelope: assume the first caller saw everything
        return _Stored(reply=crypto.decrypt(ciphertext, context=_LEGACY, key=key), view=[str(s) for s in VIEW_SCOPES])
    return _Stored(
        reply=envelope["reply"],
        view=list(envelope["view"]),
        resource_type=envelope.get("resource_type"),
        resource_id=envelope.get("resource_id"),
        subjects=[(t, i) for t, i in envelope.get("subjects", [])],
    )


@dataclass
class Idempotency:
    key: str | None
    request_hash: str
    client_id: str
    view: list[str] = field(default_factory=list)  # the view scopes of this request's caller
    # What to answer instead of doing the work: the stored reply, or the problem saying it
    # may not be shown to this token (ReplayNeedsScopes). Nothing is left to remember then.
    replay: Response | None = None

    def remember(self, session: AsyncSession, status_code: int, body: Any) -> None:
        if self.key is None:
            return
        self.remember_encoded(session, status_code, orjson.dumps(body))

    def remember_encoded(self, session: AsyncSession, status_code: int, body: bytes) -> None:
        """:meth:`remember` of a reply already encoded as JSON. Call it after the services
        have recorded the request's audit entries: the record keeps what they name."""
        if self.key is None:
            return
        unit = unit_of(session)
        envelope = {"reply": body.decode(), "view": self.view, **_resources(unit.ctx.audit)}
        session.add(
            IdempotencyRecord(
                client_id=self.client_id,
                key=self.key,
                request_hash=self.request_hash,
                status_code=status_code,
                # the reply may hold personal data (a caller with pii:read sees it): encrypted
                response_body=crypto.encrypt(orjson.dumps(envelope).decode(), context=_RECORD,
                                             key=unit.settings.data_key_bytes),
                # the database's clock, not this server's (see the module's docstring)
                created_at=cast(datetime, database_now(session)),
                expires_at=cast(datetime, database_now(session, RETENTION)),
            )
        )


async def begin(session: AsyncSession, caller: Caller, request: Request) -> Idempotency:
    key = request.headers.get(HEADER)
    body = await request.body()
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"?" + request.url.query.encode() + b"\n" + body
    ).hexdigest()
    idem = Idempotency(key=None, request_hash=digest, client_id=caller.client_id, view=view_of(caller))
    if key is None:
        return idem
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise BadIdempotencyKey("Idempotency-Key must be 1 to 255 printable characters")
    idem.key = key
    if dialect_of(session) == "postgresql":
        # A second request with the same key while the first still runs: 409 at once, rather
        # than waiting on the first's unique-index entry. (SQLite runs writers one at a time.)
        lock_id = zlib.crc32(f"{caller.client_id}\x00{key}".encode()) - 2**31
        got = (await session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_id)))).scalar()
        if not got:
            raise Conflict("A request with this Idempotency-Key is still being processed; retry later")
    found = (await session.execute(
        sa.select(IdempotencyRecord, col(IdempotencyRecord.expires_at) <= database_now(session))
        .where(col(IdempotencyRecord.client_id) == caller.client_id, col(IdempotencyRecord.key) == key)
    )).first()
    record = found[0] if found is not None else None
    if record is not None and found is not None and found[1]:  # expired, by the database's clock
        await session.delete(record)
        await session.flush()
        record = None
    if record is None:
        return idem
    if record.request_hash != digest:
        raise IdempotencyMismatch("This Idempotency-Key was used with a different request")
    unit = unit_of(session)
    stored = _open(record.response_body, unit.settings.data_key_bytes)
    missing = [s for s in stored.view if s not in caller.scopes]  # stored strings, compared as held
    idem.key = None  # nothing new to remember
    route = unit.ctx.route or "request"
    if missing:
        refused = ReplayNeedsScopes(
            "The first request under this Idempotency-Key was answered to a token holding "
            f"{' '.join(missing)}, which this token lacks. Its work is done: read the result afresh, "
            "or retry with a token holding those scopes",
            missing_scopes=missing,
        )
        unit.audit(route, outcome=Outcome.denied, resource_type=stored.resource_type,
                   resource_id=stored.resource_id, subjects=stored.subjects, replay=True, status=refused.status,
                   problem=refused.slug, missing_scopes=" ".join(missing))
        idem.replay = problem_response(refused.body(request.url.path))
        return idem
    unit.audit(route, resource_type=stored.resource_type, resource_id=stored.resource_id,
               subjects=stored.subjects, replay=True, status=record.status_code)
    idem.replay = Response(
        stored.reply,
        status_code=record.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )
    return idem
