"""Scouts, the full lead (counterpart, sealed contact, evidence), transitions, search, imports.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCH = ("to_tsvector('simple', coalesce(title,'') || ' ' || coalesce(description,'') || ' ' "
          "|| coalesce(counterpart_name,''))")


def upgrade() -> None:
    op.create_table(
        "scouts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("key_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("home_cluster", sa.Text, nullable=False),
        sa.Column("affiliate_market", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    for column in (
        sa.Column("counterpart_name", sa.Text), sa.Column("counterpart_website", sa.Text),
        sa.Column("counterpart_country", sa.Text), sa.Column("counterpart_key", sa.Text),
        sa.Column("counterpart_domain", sa.Text), sa.Column("contact_sealed", sa.LargeBinary),
        sa.Column("contact_erased_at", sa.DateTime(timezone=True)),
        sa.Column("urgency", sa.Text, nullable=False, server_default="medium"),
        sa.Column("estimated_value_eur", sa.BigInteger), sa.Column("source", sa.Text),
        sa.Column("source_date", sa.Date),
        sa.Column("evidence_links", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("status_reason", sa.Text), sa.Column("duplicate_of", UUID(as_uuid=True)),
        sa.Column("scout_id", UUID(as_uuid=True)),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("search", sa.dialects.postgresql.TSVECTOR, sa.Computed(SEARCH, persisted=True)),
    ):
        op.add_column("leads", column)
    op.execute("UPDATE leads SET last_activity_at = submitted_at")
    op.create_index("leads_search", "leads", ["search"], postgresql_using="gin")
    op.create_index("leads_page", "leads", [sa.text("submitted_at DESC"), sa.text("id DESC")])
    op.create_index("leads_counterpart", "leads", ["cluster", "target_market", "counterpart_key"])
    op.create_index("leads_domain", "leads", ["cluster", "target_market", "counterpart_domain"])
    op.create_table(
        "lead_transitions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("lead_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("by_key", UUID(as_uuid=True)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "lead_imports",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cluster", sa.Text, nullable=False),
        sa.Column("submitted_by", UUID(as_uuid=True), nullable=False),
        sa.Column("rows_total", sa.Integer),
        sa.Column("rows_processed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_accepted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "lead_import_rejections",
        sa.Column("import_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("row_number", sa.Integer, primary_key=True),
        sa.Column("errors", JSONB, nullable=False),
    )
