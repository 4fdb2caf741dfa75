"""retention purge stamp; case type delays moved to deadline rules

``case_type.target_days`` (calendar days) stopped being read when the deadlines domain
took over due dates (``deadline_rule``, working days): dropping it changes no deadline.
``missive case-type set --days N`` now writes the type's deadline rule.

Revision ID: 0070_integration_links
Revises: 0060_deadlines
Create Date: 2026-11-28 23:27:09.096394

"""
from alembic import op
import sqlalchemy as sa

import app.core.db


# revision identifiers, used by Alembic.
revision = '0070_integration_links'
down_revision = '0060_deadlines'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('case_type', schema=None) as batch_op:
        batch_op.drop_column('target_days')

    with op.batch_alter_table('correspondence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purged_at', app.core.db.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('correspondence', schema=None) as batch_op:
        batch_op.drop_column('purged_at')

    with op.batch_alter_table('case_type', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_days', sa.INTEGER(), nullable=False, server_default='30'))

