"""An import's accepted rows, each with the lead it became, so a partner system can map its
rows to lead ids.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_import_rows",
        sa.Column("import_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("row_number", sa.Integer, primary_key=True),
        sa.Column("lead_id", UUID(as_uuid=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lead_import_rows")
