"""Leads keep the words the duplicate search finds them by, scoped to their cluster and market
('LITEK/SG/oct', `domain.alike_words`), in a GIN index of their own.

The search used to ask the full-text index for every telling word of the title across the
whole programme, then keep the leads of the cluster and market: a word many leads hold made
every POST slower as leads accumulated (0.22 ms of Postgres per check at 30,000 leads). Scoped
words cost a check only the leads of its market. The full-text index stays for searching.

Existing leads get their words from the same rule in SQL (split on non-word characters,
lower case, common words left out).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# domain.COMMON_WORDS when this was written (a migration does not follow later changes).
COMMON_WORDS = ("a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or",
                "per", "the", "to", "via", "with")


def upgrade() -> None:
    op.add_column("leads", sa.Column("alike_words", ARRAY(sa.Text)))
    common = ", ".join(f"'{word}'" for word in COMMON_WORDS)
    op.execute(rf"""
        UPDATE leads SET alike_words = ARRAY(
            SELECT DISTINCT cluster || '/' || target_market || '/' || word
            FROM regexp_split_to_table(lower(title || ' ' || description || ' '
                                             || coalesce(counterpart_name, '')), '\W+') AS word
            WHERE word <> '' AND word NOT IN ({common}))""")
    # A short pending list, as for the full-text index (0007): cheap inserts, cheap reads.
    op.create_index("leads_alike_words", "leads", ["alike_words"], postgresql_using="gin",
                    postgresql_with={"fastupdate": "on", "gin_pending_list_limit": 64})


def downgrade() -> None:
    op.drop_index("leads_alike_words", table_name="leads")
    op.drop_column("leads", "alike_words")
