"""0010 notice status

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:00:00

A notice to the home district of a person of another province (deportees of every province
come through Kalimantan Barat's border posts) waits until an agency of that region is
registered: ``status`` (``delivered`` | ``waiting_for_agency``) and ``delivered_at``. Every
notice stored before was delivered when it was issued: ``status = 'delivered'`` (the column's
default) and ``delivered_at = created_at``.

The region reference itself is a file (``models/data/regions.csv``), not a table; every code
of the former Kalimantan Barat list is in the national one with its name, so stored region
codes need no mapping (tests/test_regions.py).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=24), server_default='delivered', nullable=False))
        batch_op.add_column(sa.Column('delivered_at', models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_notice_status_district', ['status', 'district'], unique=False)
    op.execute(sa.text("UPDATE notice SET delivered_at = created_at WHERE delivered_at IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_index('ix_notice_status_district')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('status')
