"""0014 officers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:00:00

Officers (people of an agency who sign in to the console), their server-side sessions, and the
agency's flag requiring a second factor. Existing agencies do not require one.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('agency', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requires_totp', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('officer',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agency_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('scopes', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('totp_secret_enc', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('disabled_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['agency_code'], ['agency.code'], name=op.f('fk_officer_agency_code_agency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_officer')),
    sa.UniqueConstraint('email', name='uq_officer_email'),
    )
    op.create_index(op.f('ix_officer_agency_code'), 'officer', ['agency_code'], unique=False)
    op.create_table('officer_session',
    sa.Column('id_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('officer_id', sa.Uuid(), nullable=False),
    sa.Column('csrf_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['officer_id'], ['officer.id'], name=op.f('fk_officer_session_officer_id_officer')),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_officer_session')),
    )
    op.create_index(op.f('ix_officer_session_officer_id'), 'officer_session', ['officer_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_officer_session_officer_id'), table_name='officer_session')
    op.drop_table('officer_session')
    op.drop_index(op.f('ix_officer_agency_code'), table_name='officer')
    op.drop_table('officer')
    with op.batch_alter_table('agency', schema=None) as batch_op:
        batch_op.drop_column('requires_totp')
