"""0006 rate limits

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 09:10:00

The counters of the rate limiter shared by several server processes (PostgreSQL). The table
is UNLOGGED there: a counter is worthless after a crash and an unlogged write needs no WAL
flush at commit. SQLite gets the same table (the schema is the same on both) but never uses it.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes
import models.base


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    prefixes = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table('rate_limit_counter',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('window_start', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start', name=op.f('pk_rate_limit_counter')),
    prefixes=prefixes,
    )


def downgrade() -> None:
    op.drop_table('rate_limit_counter')
