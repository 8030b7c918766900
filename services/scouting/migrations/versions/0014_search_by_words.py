"""Leads are searched by their words (`alike_words`), not by a tsvector parsed from their text.

The stored `search` column ran the text-search parser over title, description and counterpart
for every lead saved, and held the result in the row: with its index, a quarter of a POST's
Postgres instructions and ~550 bytes a row. Leads already keep their words, split once in
Python for the duplicate check; the search index now holds those (array_to_tsvector, no
parsing), and a search asks for words split the same way (`domain.search_query`).

Postgres instructions per POST at 20,000 leads, 5,000 POSTs counted
(bench/postgres_instructions.py --count 5000): 1.73 M before, 1.33 M after.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("leads", "search")  # and its index
    # Pending list as 0012 set it: no POST reads this index, searches read up to 1 MB.
    op.execute("CREATE INDEX leads_search ON leads USING gin (array_to_tsvector(alike_words)) "
               "WITH (fastupdate = on, gin_pending_list_limit = 1024)")


def downgrade() -> None:
    op.drop_index("leads_search", table_name="leads")
    op.execute("""
        ALTER TABLE leads ADD COLUMN search tsvector GENERATED ALWAYS AS (
            to_tsvector('simple', coalesce(title,'') || ' ' || coalesce(description,'') || ' '
                        || coalesce(counterpart_name,''))) STORED""")
    op.execute("CREATE INDEX leads_search ON leads USING gin (search) "
               "WITH (fastupdate = on, gin_pending_list_limit = 1024)")
