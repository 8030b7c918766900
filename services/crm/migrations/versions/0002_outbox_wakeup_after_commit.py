"""The relay is woken after commit, not by a NOTIFY trigger inside every writing transaction.

Revision ID: 0002
"""

from alembic import op

from shared.migrations import drop_outbox_trigger

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_outbox_trigger(op)


def downgrade() -> None:
    pass  # the trigger only woke the relay sooner; the relay polls without it
