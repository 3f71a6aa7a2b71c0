"""``Idempotency-Key`` for creating POSTs (API.md, Conventions).

The same key and the same request from the same client replays the first reply (with
``Idempotent-Replayed: true``); the same key with a different request is ``422``; the same key
while the first request is still running is ``409``. The record is written in the request's own
transaction, so a request that fails leaves no record and can simply be retried. Records are
kept :data:`RETENTION` (at least 24 hours); the stored reply is encrypted like personal data,
since it may contain some.

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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import Response
from sqlmodel.ext.asyncio.session import AsyncSession

from api.core import clock, crypto
from api.core.unit import unit_of
from api.core.context import Caller
from api.core.errors import Conflict, Problem
from models import IdempotencyRecord

RETENTION = timedelta(hours=48)
HEADER = "Idempotency-Key"
_CONTEXT = "idempotency.response"


class IdempotencyMismatch(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another request"


class BadIdempotencyKey(Problem):
    status, slug, title = 400, "bad-idempotency-key", "Idempotency-Key is not valid"


@dataclass
class Idempotency:
    key: str | None
    request_hash: str
    client_id: str
    replay: Response | None = None

    def remember(self, session: AsyncSession, status_code: int, body: Any) -> None:
        if self.key is None:
            return
        self.remember_encoded(session, status_code, orjson.dumps(body))

    def remember_encoded(self, session: AsyncSession, status_code: int, body: bytes) -> None:
        """:meth:`remember` of a reply already encoded as JSON."""
        if self.key is None:
            return
        now = clock.now()
        session.add(
            IdempotencyRecord(
                client_id=self.client_id,
                key=self.key,
                request_hash=self.request_hash,
                status_code=status_code,
                # the reply may hold personal data (a caller with pii:read sees it): encrypted
                response_body=crypto.encrypt(body.decode(), context=_CONTEXT,
                                             key=unit_of(session).settings.data_key_bytes),
                created_at=now,
                expires_at=now + RETENTION,
            )
        )


async def begin(session: AsyncSession, caller: Caller, request: Request) -> Idempotency:
    key = request.headers.get(HEADER)
    body = await request.body()
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"?" + request.url.query.encode() + b"\n" + body
    ).hexdigest()
    idem = Idempotency(key=None, request_hash=digest, client_id=caller.client_id)
    if key is None:
        return idem
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise BadIdempotencyKey("Idempotency-Key must be 1 to 255 printable characters")
    idem.key = key
    if session.bind.dialect.name == "postgresql":
        # A second request with the same key while the first still runs: 409 at once, rather
        # than waiting on the first's unique-index entry. (SQLite runs writers one at a time.)
        lock_id = zlib.crc32(f"{caller.client_id}\x00{key}".encode()) - 2**31
        got = (await session.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_id)))).scalar()
        if not got:
            raise Conflict("A request with this Idempotency-Key is still being processed; retry later")
    record = await session.get(IdempotencyRecord, (caller.client_id, key))
    if record is not None and record.expires_at <= clock.now():
        await session.delete(record)
        await session.flush()
        record = None
    if record is None:
        return idem
    if record.request_hash != digest:
        raise IdempotencyMismatch("This Idempotency-Key was used with a different request")
    idem.key = None  # nothing new to remember
    idem.replay = Response(
        crypto.decrypt(record.response_body, context=_CONTEXT, key=unit_of(session).settings.data_key_bytes),
        status_code=record.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )
    return idem
