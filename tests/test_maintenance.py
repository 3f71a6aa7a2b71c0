"""``sinergi purge``: expired idempotency records, revocations and console sessions go, live
ones stay."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from api.core import clock
from api.core.unit import operator_unit
from api.ops.service import purge_expired
from models import Agency, AgencyKind, IdempotencyRecord, Officer, OfficerSession, RevokedToken, utcnow


async def test_purge_keeps_what_is_still_needed(db):
    now = utcnow()
    async with operator_unit(db, "test") as s:
        for key, expires in (("old", now - timedelta(minutes=1)), ("live", now + timedelta(hours=23))):
            s.add(IdempotencyRecord(client_id="c1", key=key, request_hash="h", status_code=200, response_body="{}",
                                    expires_at=expires))
        s.add(RevokedToken(jti="expired-long-ago", client_id="c1", expires_at=now - timedelta(hours=1)))
        s.add(RevokedToken(jti="still-valid", client_id="c1", expires_at=now + timedelta(minutes=10)))
        s.add(Agency(code="DP3A-SANGGAU", name="DP3A Kabupaten Sanggau", kind=AgencyKind.women_child_protection,
                     jurisdiction="61.03"))
        await s.flush()
        officer = Officer(agency_code="DP3A-SANGGAU", email="kepala@dp3a.sanggau.go.id", scopes="stats:read",
                          password_hash="x")
        s.add(officer)
        await s.flush()
        idle = db.settings.session_idle
        for name, seen, ends in (("ended", now - timedelta(minutes=5), now - timedelta(seconds=1)),
                                 ("idle", now - timedelta(seconds=idle + 60), now + timedelta(hours=4)),
                                 ("live", now - timedelta(seconds=30), now + timedelta(hours=4))):
            s.add(OfficerSession(id_hash=name, officer_id=officer.id, csrf_token="t", created_at=seen, last_seen_at=seen,
                                 expires_at=ends))
    async with operator_unit(db, "test") as s:
        counts = await purge_expired(s, clock.now())
    assert counts == {"idempotency_records": 1, "revoked_tokens": 1, "officer_sessions": 2}
    async with db.read() as conn:
        keys = (await conn.execute(sa.select(IdempotencyRecord.key))).scalars().all()
        jtis = (await conn.execute(sa.select(RevokedToken.jti))).scalars().all()
        sessions = (await conn.execute(sa.select(OfficerSession.id_hash))).scalars().all()
    assert keys == ["live"] and jtis == ["still-valid"] and sessions == ["live"]


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
