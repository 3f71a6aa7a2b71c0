"""0013 recruitment reports and alerts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 11:20:00

Recruitment reports (modus, route, places, the recruiter's identifiers encrypted with a blind
index, the returnees who named the recruiter) and the alerts raised on an identifier reported by
enough independent agencies.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.base

# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('recruitment_report',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('reporting_agency', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('modus', sa.String(length=40), nullable=False),
    sa.Column('route', sa.JSON(), nullable=False),
    sa.Column('places', sa.JSON(), nullable=False),
    sa.Column('place_note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('destination_country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('observed_on', sa.Date(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reporting_agency'], ['agency.code'], name=op.f('fk_recruitment_report_reporting_agency_agency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruitment_report'))
    )
    with op.batch_alter_table('recruitment_report', schema=None) as batch_op:
        batch_op.create_index('ix_recruitment_report_modus_region', ['modus', 'region'], unique=False)
        batch_op.create_index(batch_op.f('ix_recruitment_report_reporting_agency'), ['reporting_agency'], unique=False)

    op.create_table('recruiter_identifier',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('report_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('value_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('value_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['recruitment_report.id'], name=op.f('fk_recruiter_identifier_report_id_recruitment_report')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruiter_identifier')),
    sa.UniqueConstraint('report_id', 'kind', 'value_index', name=op.f('uq_recruiter_identifier_report_id_kind_value_index'))
    )
    with op.batch_alter_table('recruiter_identifier', schema=None) as batch_op:
        batch_op.create_index('ix_recruiter_identifier_kind_value_index', ['kind', 'value_index'], unique=False)

    op.create_table('recruiter_link',
    sa.Column('report_id', sa.Uuid(), nullable=False),
    sa.Column('returnee_id', sa.Uuid(), nullable=False),
    sa.Column('relationship', sa.String(length=30), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['recruitment_report.id'], name=op.f('fk_recruiter_link_report_id_recruitment_report')),
    sa.ForeignKeyConstraint(['returnee_id'], ['returnee.id'], name=op.f('fk_recruiter_link_returnee_id_returnee')),
    sa.PrimaryKeyConstraint('report_id', 'returnee_id', name=op.f('pk_recruiter_link'))
    )

    op.create_table('recruitment_alert',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('value_index', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value_enc', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sources', sa.Integer(), nullable=False),
    sa.Column('raised_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruitment_alert')),
    sa.UniqueConstraint('kind', 'value_index', name=op.f('uq_recruitment_alert_kind_value_index'))
    )


def downgrade() -> None:
    op.drop_table('recruitment_alert')
    op.drop_table('recruiter_link')
    op.drop_table('recruiter_identifier')
    op.drop_table('recruitment_report')
