"""Lead search index without a pending list: every duplicate check reads it, so keep it flat.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER INDEX leads_search SET (fastupdate = off)")
