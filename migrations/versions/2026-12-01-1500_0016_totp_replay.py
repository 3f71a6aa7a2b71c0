"""0016 a TOTP code is accepted once

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 15:00:00

The time step of the last second-factor code an officer used: a code of that step or an earlier
one is refused (RFC 6238, section 5.2), so a code seen over a shoulder or replayed from a
captured form does not open a second session within its 30-second window.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('officer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('officer', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
