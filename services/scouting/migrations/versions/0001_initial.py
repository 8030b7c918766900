"""Platform tables and leads.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from shared.migrations import create_platform_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables(op)
    op.create_table(
        "leads",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("target_market", sa.Text, nullable=False, index=True),
        sa.Column("application_areas", ARRAY(sa.Text), nullable=False),
        sa.Column("technologies", ARRAY(sa.Text), nullable=False),
        sa.Column("status", sa.Text, nullable=False, index=True),
        sa.Column("cluster", sa.Text, nullable=False, index=True),
        sa.Column("submitted_by", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    )
