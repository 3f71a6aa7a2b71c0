"""0008 change positions

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 11:00:00

A commit-ordered position of each returnee's, referral's and notice's last change (``change_pos``), from
a head row per list (``change_head``) that the unit of work advances just before it commits:
the sync order of the lists (``sort=changes``). ``updated_at`` is the clock at the start of the
writing transaction, so a batch that commits later can carry an earlier time; a partner syncing
by it skips records. Existing rows are numbered in ``(updated_at, id)`` order, the best order
known for them.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("returnee", "referral", "notice")


def upgrade() -> None:
    op.create_table('change_head',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('pos', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_change_head')),
    )
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('change_pos', sa.BigInteger(), nullable=True))
        # backfill in (updated_at, id) order; the same statement on both databases
        op.execute(sa.text(
            f"UPDATE {table} SET change_pos = (SELECT n FROM (SELECT id, ROW_NUMBER() OVER "
            f"(ORDER BY updated_at, id) AS n FROM {table}) AS o WHERE o.id = {table}.id)"
        ))
        op.execute(sa.text(
            f"INSERT INTO change_head (key, pos) SELECT '{table}', COALESCE(MAX(change_pos), 0) FROM {table}"
        ))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_change_pos', ['change_pos'], unique=True)


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_change_pos')
            batch_op.drop_column('change_pos')
    op.drop_table('change_head')
