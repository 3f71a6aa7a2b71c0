"""0015 officer management

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 12:50:00

What managing officers needs: when an officer last signed in, whether their password was set by
someone else (a reset: the next sign-in asks for a new one), and sign-ins that are half done
(a new password or a second factor still to enrol, with the TOTP secret being enrolled).
Existing officers keep their passwords; existing sessions are whole ones.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from models.base import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('officer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_signin_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('password_must_change', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    with op.batch_alter_table('officer_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('totp_candidate_enc', sqlmodel.sql.sqltypes.AutoString(length=400),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('officer_session', schema=None) as batch_op:
        batch_op.drop_column('totp_candidate_enc')
        batch_op.drop_column('stage')
    with op.batch_alter_table('officer', schema=None) as batch_op:
        batch_op.drop_column('password_must_change')
        batch_op.drop_column('last_signin_at')
