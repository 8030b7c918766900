"""The duplicate search finds leads by their title words alone, in an index of their own.

Every POST wrote each of its ~28 telling words (`alike_words`) into a GIN index, and most of
those words sit in posting lists of a few hundred leads of the market, which Postgres decodes
and re-encodes whole for every lead added: 30% of a POST's Postgres instructions. The search
only ever asks for a title's words, so only the ~6 title words are indexed now (`title_words`);
`alike_words` stays, unindexed, for judging near-identical wording. A look-alike must now hold
the title's words in its own title, not anywhere in its text.

Postgres instructions per POST at 20,000 leads (bench/postgres_instructions.py, 1,000 POSTs):
2.67 M before, 1.88 M after.

Existing leads get their title words from the same rule in SQL (split on non-word characters,
lower case, common words left out, scoped to cluster and market).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# domain.COMMON_WORDS when this was written (a migration does not follow later changes).
COMMON_WORDS = ("a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or",
                "per", "the", "to", "via", "with")


def upgrade() -> None:
    op.add_column("leads", sa.Column("title_words", ARRAY(sa.Text(collation="C"))))
    common = ", ".join(f"'{word}'" for word in COMMON_WORDS)
    op.execute(rf"""
        UPDATE leads SET title_words = NULLIF(ARRAY(
            SELECT DISTINCT cluster || '/' || target_market || '/' || word
            FROM regexp_split_to_table(lower(title), '\W+') AS word
            WHERE word <> '' AND word NOT IN ({common})), '{{}}')""")
    # Each lead's words straight into the index, as 0010 does for alike_words: a pending list
    # would be read through by every search.
    op.create_index("leads_title_words", "leads", ["title_words"], postgresql_using="gin",
                    postgresql_with={"fastupdate": "off"})
    op.drop_index("leads_alike_words", table_name="leads")


def downgrade() -> None:
    op.create_index("leads_alike_words", "leads", ["alike_words"], postgresql_using="gin",
                    postgresql_with={"fastupdate": "off"})
    op.drop_index("leads_title_words", table_name="leads")
    op.drop_column("leads", "title_words")
