"""What an offering must be to answer a lead: its least TRL, and whether it needs a clearance.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leads", sa.Column("min_trl", sa.Integer, nullable=True))
    op.add_column("leads", sa.Column("requires_clearance", sa.Boolean, nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("leads", "requires_clearance")
    op.drop_column("leads", "min_trl")
