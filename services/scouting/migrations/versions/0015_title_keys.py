"""The duplicate search finds leads by title keys, not by title words.

With `title_words` (0011) every POST asked the index for each telling word of its title and
wrote each into it; a word of the trade sits in the lists of thousands of leads of a market,
which Postgres decodes whole for every search and every lead added, so POSTs grew slower as
leads accumulated (a fifth of a POST's Postgres instructions at 60,000 leads). A title key
(`domain.TitleKeys`) is a hash of the set of a title's telling words (`title_key`, B-tree) or
of that set less one word (`title_subkeys`, GIN): each is held by a handful of leads, so
finding and adding one costs the same at any size.
Leads alike are now those whose titles have the same telling words, or one more or one fewer
(the longer of three or more), instead of every word of the new title.

Existing leads get their keys from the same rule in SQL (split on non-word characters, lower
case, common words left out, distinct, byte order; 64 bits of the MD5 of
'cluster/market/word word ...').

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# domain.COMMON_WORDS when this was written (a migration does not follow later changes).
COMMON_WORDS = ("a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or",
                "per", "the", "to", "via", "with")


def upgrade() -> None:
    op.add_column("leads", sa.Column("title_key", sa.BigInteger))
    op.add_column("leads", sa.Column("title_subkeys", ARRAY(sa.BigInteger)))
    common = ", ".join(f"'{word}'" for word in COMMON_WORDS)
    key = "('x' || left(md5({}), 16))::bit(64)::bigint"
    op.execute(rf"""
        WITH titles AS (
            SELECT id, cluster || '/' || target_market || '/' AS scope, ARRAY(
                SELECT DISTINCT word COLLATE "C"
                FROM regexp_split_to_table(lower(title), '\W+') AS word
                WHERE word <> '' AND word NOT IN ({common}) ORDER BY 1) AS words
            FROM leads
        ), shorter AS (
            SELECT id, array_agg({key.format(
                "scope || array_to_string(words[1:i - 1] || words[i + 1:cardinality(words)], ' ')"
            )} ORDER BY i) AS keys
            FROM titles, generate_series(1, cardinality(words)) AS i
            WHERE cardinality(words) >= 3 GROUP BY id
        )
        UPDATE leads SET title_key = {key.format("titles.scope || array_to_string(words, ' ')")},
                         title_subkeys = shorter.keys
        FROM titles LEFT JOIN shorter USING (id)
        WHERE leads.id = titles.id AND cardinality(titles.words) > 0""")
    op.create_index("leads_title_key", "leads", ["title_key"])
    # Each lead's keys straight into the index: a pending list would be read by every search.
    op.create_index("leads_title_subkeys", "leads", ["title_subkeys"], postgresql_using="gin",
                    postgresql_with={"fastupdate": "off"})
    op.drop_index("leads_title_words", table_name="leads")
    op.drop_column("leads", "title_words")


def downgrade() -> None:
    op.add_column("leads", sa.Column("title_words", ARRAY(sa.Text(collation="C"))))
    common = ", ".join(f"'{word}'" for word in COMMON_WORDS)
    op.execute(rf"""
        UPDATE leads SET title_words = NULLIF(ARRAY(
            SELECT DISTINCT cluster || '/' || target_market || '/' || word
            FROM regexp_split_to_table(lower(title), '\W+') AS word
            WHERE word <> '' AND word NOT IN ({common})), '{{}}')""")
    op.create_index("leads_title_words", "leads", ["title_words"], postgresql_using="gin",
                    postgresql_with={"fastupdate": "off"})
    op.drop_index("leads_title_subkeys", table_name="leads")
    op.drop_index("leads_title_key", table_name="leads")
    op.drop_column("leads", "title_subkeys")
    op.drop_column("leads", "title_key")
