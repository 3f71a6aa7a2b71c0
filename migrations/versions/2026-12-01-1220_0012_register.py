"""0012 the register of migrant workers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:10:00

Departures (BP3MI's placement data, a village's or district's records) and the register's person
view (``register_person``): one row per person summed from their departures and returnee records.
The persons of the returnees already stored are summed here, so the register starts with them.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.base

# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('departure',
    sa.Column('source_ref', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('origin_district', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('origin_subdistrict', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('origin_village', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('destination_country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('destination_region', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('employer', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('sector', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('departure_date', sa.Date(), nullable=False),
    sa.Column('procedural', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('source_agency', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('nik_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('nik_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_departure_person_id_person')),
    sa.ForeignKeyConstraint(['source_agency'], ['agency.code'], name=op.f('fk_departure_source_agency_agency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departure')),
    sa.UniqueConstraint('source_agency', 'source_ref', name=op.f('uq_departure_source_agency_source_ref'))
    )
    with op.batch_alter_table('departure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_departure_person_id'), ['person_id'], unique=False)

    op.create_table('register_person',
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('nik_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('nik_context', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('origin_district', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('origin_subdistrict', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('origin_village', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('departures', sa.Integer(), nullable=False),
    sa.Column('procedural_departures', sa.Integer(), nullable=False),
    sa.Column('returns', sa.Integer(), nullable=False),
    sa.Column('deportations', sa.Integer(), nullable=False),
    sa.Column('last_departure', sa.Date(), nullable=True),
    sa.Column('last_return', sa.Date(), nullable=True),
    sa.Column('last_return_type', sa.String(length=20), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('repeat_return', sa.Boolean(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_register_person_person_id_person')),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_register_person'))
    )
    with op.batch_alter_table('register_person', schema=None) as batch_op:
        batch_op.create_index('ix_register_person_origin', ['origin_district', 'origin_subdistrict'], unique=False)

    _backfill()


def _backfill() -> None:
    """One register row per person of the stored returnees: their returns, the origin of the
    latest, deported or returned by its type, a repeat return from the second (the rule of
    api.register.service.summarise, for records that are all returns)."""
    bind = op.get_bind()
    returnee = sa.table("returnee", sa.column("person_id", sa.Uuid()), sa.column("full_name"), sa.column("sex"),
                        sa.column("birth_date", sa.Date()), sa.column("nik_enc"), sa.column("origin_district"),
                        sa.column("origin_subdistrict"), sa.column("return_date", sa.Date()),
                        sa.column("return_type"), sa.column("updated_at", models.base.UTCDateTime()),
                        sa.column("id", sa.Uuid()))
    person = sa.table("register_person", *(sa.column(c) for c in (
        "full_name", "sex", "birth_date", "nik_enc", "nik_context", "origin_district", "origin_subdistrict",
        "origin_village", "departures", "procedural_departures", "returns", "deportations", "last_departure",
        "last_return", "last_return_type", "status", "repeat_return")),
        sa.column("person_id", sa.Uuid()), sa.column("updated_at", models.base.UTCDateTime()))
    rows = bind.execute(sa.select(returnee).order_by(returnee.c.person_id, returnee.c.return_date,
                                                     returnee.c.updated_at, returnee.c.id)).all()
    out: dict[object, dict[str, object]] = {}
    for r in rows:
        p = out.setdefault(r.person_id, {"person_id": r.person_id, "returns": 0, "deportations": 0, "nik_enc": None,
                                         "nik_context": None, "updated_at": r.updated_at})
        p.update(full_name=r.full_name, sex=r.sex, birth_date=r.birth_date, origin_district=r.origin_district,
                 origin_subdistrict=r.origin_subdistrict, origin_village=None, departures=0,
                 procedural_departures=0, last_departure=None, last_return=r.return_date,
                 last_return_type=r.return_type, status="deported" if r.return_type == "deported" else "returned")
        p["returns"] = int(p["returns"]) + 1  # type: ignore[call-overload]
        p["deportations"] = int(p["deportations"]) + (r.return_type == "deported")  # type: ignore[call-overload]
        p["repeat_return"] = p["returns"] >= 2  # type: ignore[operator]
        if r.nik_enc is not None:
            p["nik_enc"], p["nik_context"] = r.nik_enc, "returnee.nik"
        p["updated_at"] = max(p["updated_at"], r.updated_at)  # type: ignore[type-var]
    values = list(out.values())
    for i in range(0, len(values), 1000):
        bind.execute(sa.insert(person), values[i:i + 1000])


def downgrade() -> None:
    op.drop_table('register_person')
    op.drop_table('departure')
