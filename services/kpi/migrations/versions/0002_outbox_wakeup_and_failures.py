"""Outbox: the relay is woken after commit (no NOTIFY trigger); unsendable rows are marked.

Revision ID: 0002
"""

from alembic import op

from shared.migrations import outbox_wakeup_and_failures

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    outbox_wakeup_and_failures(op)


def downgrade() -> None:
    pass  # the new columns are harmless to older code, and the relay polls without the trigger
