"""Scouting's schema: platform tables, leads and their scouts, transitions, attachments, imports.

The pre-release migrations 0001-0016 squashed into one (2026-12-04): it creates what applying
them in order created, with nothing that a later one dropped or replaced. A database made by
the old chain cannot be upgraded from here; rebuild it.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from shared.migrations import create_platform_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)

# Leads' columns no query filters, joins or sorts on: they keep no planner statistics. Most of
# autovacuum's ANALYZE of `leads` went into statistics nothing reads (the element frequencies
# of the word and key arrays, long descriptions, sealed contacts; 60,000 leads: 0.75 s before,
# 0.39 s after). Searches still use their index: without statistics a text match is estimated
# as selective.
UNANALYZED = ("description", "contact_sealed", "evidence_links", "alike_words", "title_subkeys")


def upgrade() -> None:
    create_platform_tables(op)  # outbox, inbox, api_keys, idempotency_keys, audit_log
    _tables()
    _indexes()
    _statistics()


def _tables() -> None:
    op.create_table(
        "leads",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("target_market", sa.Text, nullable=False),
        sa.Column("application_areas", ARRAY(sa.Text), nullable=False),
        sa.Column("technologies", ARRAY(sa.Text), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cluster", sa.Text, nullable=False),
        sa.Column("submitted_by", UUID(as_uuid=True), nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=False),
        sa.Column("counterpart_name", sa.Text),
        sa.Column("counterpart_website", sa.Text),
        sa.Column("counterpart_country", sa.Text),
        # Normalised counterpart name and website domain: what duplicate hints look up.
        sa.Column("counterpart_key", sa.Text),
        sa.Column("counterpart_domain", sa.Text),
        sa.Column("contact_sealed", sa.LargeBinary),  # Fernet-sealed contact (contacts.py)
        sa.Column("contact_erased_at", TIMESTAMP),
        sa.Column("urgency", sa.Text, nullable=False, server_default="medium"),
        sa.Column("estimated_value_eur", sa.BigInteger),
        sa.Column("source", sa.Text),
        sa.Column("source_date", sa.Date),
        sa.Column("evidence_links", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("status_reason", sa.Text),
        sa.Column("duplicate_of", UUID(as_uuid=True)),
        sa.Column("scout_id", UUID(as_uuid=True)),
        sa.Column("last_activity_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        # The telling words of title, description and counterpart (domain.lead_alike_words,
        # split once in Python on every save): the search index holds them, and they judge
        # near-identical wording between leads of one cluster and market, so they carry no
        # cluster/market scope. Codes of a search, never sorted for people: collation "C"
        # compares them as bytes, cheaper in every search and every insert.
        sa.Column("alike_words", ARRAY(sa.Text(collation="C"))),
        # What the duplicate search finds a lead by (domain.TitleKeys): 64 bits of the MD5 of
        # 'cluster/market/' and the title's sorted set of telling words (`title_key`), and of
        # that set less each one word (`title_subkeys`, titles of three words or more). Each
        # key is held by a handful of leads, so finding and adding one costs the same at any
        # size, which indexing the title's words themselves did not.
        sa.Column("title_key", sa.BigInteger),
        sa.Column("title_subkeys", ARRAY(sa.BigInteger)),
    )
    op.create_table(
        "scouts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("key_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("home_cluster", sa.Text, nullable=False),
        sa.Column("affiliate_market", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.create_table(
        "lead_transitions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("lead_id", UUID(as_uuid=True), nullable=False),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("by_key", UUID(as_uuid=True)),
        sa.Column("at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "lead_attachments",  # size- and type-limited files
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("lead_id", UUID(as_uuid=True), nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_by", UUID(as_uuid=True), nullable=False),
        sa.Column("uploaded_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
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
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TIMESTAMP),
    )
    op.create_table(
        "lead_import_rejections",
        sa.Column("import_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("row_number", sa.Integer, primary_key=True),
        sa.Column("errors", JSONB, nullable=False),
    )
    op.create_table(
        "lead_import_rows",  # accepted rows and the lead each became, for partner systems
        sa.Column("import_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("row_number", sa.Integer, primary_key=True),
        sa.Column("lead_id", UUID(as_uuid=True), nullable=False),
    )


def _indexes() -> None:
    for column in ("target_market", "status", "cluster", "submitted_by"):
        op.create_index(f"ix_leads_{column}", "leads", [column])
    op.create_index("leads_page", "leads", [sa.text("submitted_at DESC"), sa.text("id DESC")])
    # Duplicate hints look leads up by counterpart key or website domain alone. Led by
    # (cluster, market), a planner without statistics (a new or fast-growing table) read every
    # lead of the cluster and market for each check; led by the counterpart it has no choice.
    op.create_index("leads_counterpart_key", "leads", ["counterpart_key"])
    op.create_index("leads_counterpart_domain", "leads", ["counterpart_domain"])
    # Duplicate search: the whole title's key by B-tree, the shorter titles' keys by GIN. Every
    # POST searches the GIN index, so each lead's keys go straight into it (fastupdate off): a
    # pending list would be read through by every search.
    op.create_index("leads_title_key", "leads", ["title_key"])
    op.create_index("leads_title_subkeys", "leads", ["title_subkeys"], postgresql_using="gin",
                    postgresql_with={"fastupdate": "off"})
    # Search (`q`, domain.search_query): a tsvector cast from the kept words, no text parsing.
    # No POST reads this index, only searches do, so it has a 1 MB pending list: a merge per
    # ~1,500 leads rather than per ~80. Each merge rewrites the entry of every word the
    # pending leads hold; shorter lists made this index half of a POST's write-ahead log.
    op.execute("CREATE INDEX leads_search ON leads USING gin (array_to_tsvector(alike_words)) "
               "WITH (fastupdate = on, gin_pending_list_limit = 1024)")
    op.create_index("ix_lead_transitions_lead_id", "lead_transitions", ["lead_id"])
    op.create_index("ix_lead_attachments_lead_id", "lead_attachments", ["lead_id"])


def _statistics() -> None:
    columns = ", ".join(f"ALTER COLUMN {column} SET STATISTICS 0" for column in UNANALYZED)
    op.execute(f"ALTER TABLE leads {columns}")
    # The lexeme frequencies of the search index's expression: nothing reads them either.
    op.execute("ALTER INDEX leads_search ALTER COLUMN 1 SET STATISTICS 0")
