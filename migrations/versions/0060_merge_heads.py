"""merge the engine, intake and studio heads (the lead re-chains them at merge)

Revision ID: 0060_merge_heads
Revises: 0005_instance_waiting, 0030_intake, 0050_studio
Create Date: 2026-11-28 23:00:00

"""

# revision identifiers, used by Alembic.
revision = '0060_merge_heads'
down_revision = ('0005_instance_waiting', '0030_intake', '0050_studio')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
