"""Reads at the driver (``api.core.db.rows`` / ``copies``): the same values as through SQLAlchemy.

The caller lookup of every request and the referral read go to psycopg directly on PostgreSQL,
with SQLAlchemy's compilation and type processing (api/core/db.py). What these tests hold: the
values and their types are those ``session.execute`` gives, a statement compiled once by its
structure still runs with each call's own values, errors are SQLAlchemy's (and redacted), and
the copies shown in a reply are not in the session.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlmodel import col, select

from api.core import db as dbmod
from api.core.context import Caller
from api.core.db import Database
from api.core.unit import operator_unit
from api.referrals import repository
from models import Agency, AgencyKind, Referral, ReferralHistory, ReferralStatus, Urgency
from tests.conftest import Party

CONSENT = {"given": True, "given_by": "the subject", "given_at": "2025-05-20T03:00:00Z", "method": "written"}


async def _referral(sender: Party, to: str = "POLRES-BENGKAYANG") -> uuid.UUID:
    body = {"to_agency": to, "reason": "suspected_tppo_victim", "legal_basis": "UU-21-2007:51",
            "urgency": "high", "subject": {"full_name": "Subjek Uji", "sex": "F", "district": "61.07.07",
                                           "phone": "081234567890"},
            "consent": CONSENT}
    r = await sender.http.post("/v1/referrals", json=body, headers=await sender.headers())
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


@pytest.fixture
async def parties(make_party) -> tuple[Party, Party, Party]:
    sender = await make_party("BP3MI-KALBAR", "61", "referrals:write referrals:read",
                              kind=AgencyKind.migrant_protection)
    receiver = await make_party("POLRES-BENGKAYANG", "61.07", "referrals:read referrals:respond",
                                kind=AgencyKind.police)
    other = await make_party("DP3A-SAMBAS", "61.01", "referrals:read", kind=AgencyKind.women_child_protection)
    return sender, receiver, other


def _caller(code: str, kind: AgencyKind, jurisdiction: str) -> Caller:
    return Caller(client_id="c", agency=code, agency_kind=kind, jurisdiction=jurisdiction,
                  scopes=frozenset(), token_id=str(uuid.uuid4()))


async def test_copies_hold_what_the_orm_loads(db: Database, parties) -> None:
    sender, receiver, _other = parties
    rid = await _referral(sender)
    r = await receiver.http.post(f"/v1/referrals/{rid}/transitions", json={"action": "receive"},
                                 headers=await receiver.headers("referrals:respond") | {"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    caller = _caller("POLRES-BENGKAYANG", AgencyKind.police, "61.07")
    async with operator_unit(db, "test") as session:
        loaded = await repository.get_readable(session, caller, rid)
        history = await repository.history_of(session, rid)
        shown = await repository.shown(session, caller, rid)
        shown_history = await repository.history_shown(session, rid)
        for column in Referral.__table__.columns:  # type: ignore[attr-defined]
            assert getattr(shown, column.key) == getattr(loaded, column.key), column.key
            assert type(getattr(shown, column.key)) is type(getattr(loaded, column.key)), column.key
        assert isinstance(shown.status, ReferralStatus) and shown.status is ReferralStatus.received
        assert isinstance(shown.urgency, Urgency)
        assert isinstance(shown.due_at, datetime) and shown.due_at.utcoffset() is not None
        assert [(h.seq, h.from_status, h.to_status, h.action, h.at) for h in shown_history] == \
            [(h.seq, h.from_status, h.to_status, h.action, h.at) for h in history]
        assert [type(h.to_status) for h in shown_history] == [ReferralStatus, ReferralStatus]
        # a copy is not the session's object (not even an ORM instance: the session refuses it),
        # and it cannot be changed
        assert shown is not loaded
        with pytest.raises(sa_exc.InvalidRequestError):
            session.add(shown)
        with pytest.raises(AttributeError):
            shown.note = "changed on the copy"


async def test_a_statement_compiled_once_runs_with_each_calls_values(db: Database, parties) -> None:
    sender, _receiver, _other = parties
    first, second = await _referral(sender), await _referral(sender, to="DP3A-SAMBAS")
    police = _caller("POLRES-BENGKAYANG", AgencyKind.police, "61.07")
    sambas = _caller("DP3A-SAMBAS", AgencyKind.women_child_protection, "61.01")
    async with operator_unit(db, "test") as session:
        # the same structure, other values: compiled once, each run with its own
        for code in ("BP3MI-KALBAR", "POLRES-BENGKAYANG", "DP3A-SAMBAS", "NO-SUCH-AGENCY"):
            found = await dbmod.rows(session, sa.select(col(Agency.code), col(Agency.kind)).where(col(Agency.code) == code))
            assert found == ([(code, (await session.get(Agency, code)).kind)] if code != "NO-SUCH-AGENCY" else [])
        # a statement kept and run again, its values given per call
        assert (await repository.shown(session, police, first)).to_agency == "POLRES-BENGKAYANG"
        assert (await repository.shown(session, sambas, second)).to_agency == "DP3A-SAMBAS"
        for caller, rid in ((police, second), (sambas, first)):  # the other agency's: not found
            with pytest.raises(Exception) as caught:
                await repository.shown(session, caller, rid)
            assert getattr(caught.value, "status", None) == 404
        # another token of the same caller uses the statement kept for it
        assert (await repository.shown(session, _caller("POLRES-BENGKAYANG", AgencyKind.police, "61.07"),
                                       first)).id == first
        # an IN list (expanded per call) takes SQLAlchemy's own path, with the same result
        ids = sorted([first, second])
        stmt = sa.select(col(Referral.id)).where(col(Referral.id).in_(ids)).order_by(col(Referral.id))
        assert await dbmod.rows(session, stmt) == [(i,) for i in ids]


async def test_named_parameters_are_required_and_typed(db: Database) -> None:
    stmt = select(ReferralHistory).where(col(ReferralHistory.referral_id) == sa.bindparam("rid", type_=sa.Uuid()))
    async with operator_unit(db, "test") as session:
        assert await dbmod.copies(session, stmt, rid=uuid.uuid4()) == []
        with pytest.raises((sa_exc.InvalidRequestError, sa_exc.StatementError)):
            await dbmod.copies(session, stmt)  # no value for a named parameter: refused before it is sent


async def test_a_driver_error_is_sqlalchemys_and_redacted(db: Database, backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite goes through session.execute")
    stmt = sa.select(sa.cast(sa.bindparam("n", type_=sa.String()), sa.Integer))
    async with db.sessionmaker() as session:
        with pytest.raises(sa_exc.DataError) as caught:
            await dbmod.rows(session, stmt, n="secret-value-7")
        await session.rollback()
    assert "secret-value-7" not in str(caught.value)
    assert "invalid input syntax for type integer" in str(caught.value)


async def test_a_returnee_copy_holds_what_the_orm_loads(db: Database, parties) -> None:
    from datetime import date

    from api.returnees import repository as returnees
    from models import ControlMethod, ExploitationType, Returnee
    from tests.returnee_rows import insert_returnees

    (rid,) = await insert_returnees(db, "BP3MI-KALBAR", "61.07", birth_date=date(1990, 1, 2), documented=False,
                                    control_methods=[ControlMethod.debt_bondage, ControlMethod.takes_earnings],
                                    exploitation_types=[ExploitationType.forced_labour])
    bp3mi = _caller("BP3MI-KALBAR", AgencyKind.migrant_protection, "61")
    sambas = _caller("DP3A-SAMBAS", AgencyKind.women_child_protection, "61.01")
    async with operator_unit(db, "test") as session:
        loaded = (await session.exec(returnees.readable(bp3mi).where(col(Returnee.id) == rid))).one()
        shown = await returnees.shown(session, bp3mi, rid)
        for column in Returnee.__table__.columns:  # type: ignore[attr-defined]
            assert getattr(shown, column.key) == getattr(loaded, column.key), column.key
            assert type(getattr(shown, column.key)) is type(getattr(loaded, column.key)), column.key
        assert shown.control_methods == [ControlMethod.debt_bondage, ControlMethod.takes_earnings]
        assert all(isinstance(m, ControlMethod) for m in shown.control_methods)
        with pytest.raises(Exception) as caught:  # another district's agency: as if it did not exist
            await returnees.shown(session, sambas, rid)
        assert getattr(caught.value, "status", None) == 404


async def test_a_notice_copy_holds_what_the_orm_loads(db: Database, make_party, client) -> None:
    from api.notices import repository as notices
    from models import Notice
    from tests.returnee_rows import insert_returnees

    bp3mi = await make_party("BP3MI-KALBAR", "61", "notices:write notices:read", kind=AgencyKind.migrant_protection)
    (rid,) = await insert_returnees(db, "BP3MI-KALBAR", "61.07")
    r = await client.post("/v1/notices", headers=await bp3mi.headers(), json={
        "district": "61.07", "returnee_ids": [str(rid)], "summary": "Deportees via Jagoi Babang",
        "arrival_date": "2025-06-12", "entry_point": "PLBN Jagoi Babang"})
    assert r.status_code == 201, r.text
    nid = uuid.UUID(r.json()["id"])
    district = _caller("DP3A-BENGKAYANG", AgencyKind.women_child_protection, "61.07")
    async with operator_unit(db, "test") as session:
        loaded = await notices.get_readable(session, district, nid)
        shown = await notices.shown(session, district, nid)
        for column in Notice.__table__.columns:  # type: ignore[attr-defined]
            assert getattr(shown, column.key) == getattr(loaded, column.key), column.key
            assert type(getattr(shown, column.key)) is type(getattr(loaded, column.key)), column.key
        with pytest.raises(Exception) as caught:
            await notices.shown(session, _caller("DP3A-SAMBAS", AgencyKind.women_child_protection, "61.01"), nid)
        assert getattr(caught.value, "status", None) == 404


async def test_the_driver_connection_is_the_connections_own_and_an_invalidated_one_is_connected_again(
        db: Database) -> None:
    """``driver_connection`` reads the driver's connection under a live SQLAlchemy connection
    without SQLAlchemy's greenlet; one that was invalidated (its link lost) is connected again
    by SQLAlchemy once its transaction is rolled back, as ``get_raw_connection`` does, and works."""
    async with db.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
        direct = await dbmod.driver_connection(conn)
        assert direct is (await conn.get_raw_connection()).driver_connection
        await conn.invalidate()
        with pytest.raises(sa_exc.PendingRollbackError):  # SQLAlchemy's own answer, not a dead connection
            await dbmod.driver_connection(conn)
        await conn.rollback()
        again = await dbmod.driver_connection(conn)
        assert again is not direct and again is (await conn.get_raw_connection()).driver_connection
        assert (await conn.execute(sa.text("SELECT 2"))).scalar_one() == 2
