"""``sinergi purge``: expired idempotency records and revocations go, live ones stay."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from api.core import clock
from api.core.unit import operator_unit
from api.ops.service import purge_expired
from models import IdempotencyRecord, RevokedToken, utcnow


async def test_purge_keeps_what_is_still_needed(db):
    now = utcnow()
    async with operator_unit(db, "test") as s:
        for key, expires in (("old", now - timedelta(minutes=1)), ("live", now + timedelta(hours=23))):
            s.add(IdempotencyRecord(client_id="c1", key=key, request_hash="h", status_code=200, response_body="{}",
                                    expires_at=expires))
        s.add(RevokedToken(jti="expired-long-ago", client_id="c1", expires_at=now - timedelta(hours=1)))
        s.add(RevokedToken(jti="still-valid", client_id="c1", expires_at=now + timedelta(minutes=10)))
    async with operator_unit(db, "test") as s:
        counts = await purge_expired(s, clock.now())
    assert counts == {"idempotency_records": 1, "revoked_tokens": 1}
    async with db.read() as conn:
        keys = (await conn.execute(sa.select(IdempotencyRecord.key))).scalars().all()
        jtis = (await conn.execute(sa.select(RevokedToken.jti))).scalars().all()
    assert keys == ["live"] and jtis == ["still-valid"]


async def test_purge_on_a_server_whose_clock_is_ahead_keeps_live_keys(db):
    """Idempotency records expire by the database's clock: a purge run on a server two days
    ahead deletes no key that is still live."""
    now = utcnow()
    async with operator_unit(db, "test") as s:
        s.add(IdempotencyRecord(client_id="c1", key="live", request_hash="h", status_code=200, response_body="{}",
                                expires_at=now + timedelta(hours=47)))
    with clock.frozen(now + timedelta(hours=49)):
        async with operator_unit(db, "test") as s:
            counts = await purge_expired(s, clock.now())
    assert counts["idempotency_records"] == 0
    async with db.read() as conn:
        assert (await conn.execute(sa.select(IdempotencyRecord.key))).scalars().all() == ["live"]
