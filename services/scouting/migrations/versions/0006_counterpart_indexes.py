"""Duplicate hints look leads up by counterpart key or website domain alone.

With (cluster, market, ...) indexes, a planner without statistics (a new or fast-growing
table, before autovacuum has analysed it) read every lead of the cluster and market for each
duplicate check; an index led by the counterpart leaves it no such choice.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("leads_counterpart", table_name="leads")
    op.drop_index("leads_domain", table_name="leads")
    op.create_index("leads_counterpart_key", "leads", ["counterpart_key"])
    op.create_index("leads_counterpart_domain", "leads", ["counterpart_domain"])


def downgrade() -> None:
    op.drop_index("leads_counterpart_key", table_name="leads")
    op.drop_index("leads_counterpart_domain", table_name="leads")
    op.create_index("leads_counterpart", "leads", ["cluster", "target_market", "counterpart_key"])
    op.create_index("leads_domain", "leads", ["cluster", "target_market", "counterpart_domain"])
