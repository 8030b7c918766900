"""A lead's wording words lose their cluster and market scope ('LITEK/SG/oct' -> 'oct').

Since 0011 no index holds `alike_words`: they only judge near-identical wording between leads
of one cluster and market, where a scope adds nothing but bytes (about 300 per lead, in every
row and in the write-ahead log) and work for every POST. `title_words`, which the index holds,
stay scoped.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        UPDATE leads SET alike_words = ARRAY(
            SELECT substr(word, char_length(cluster || '/' || target_market || '/') + 1)
            FROM unnest(alike_words) AS word)
        WHERE alike_words IS NOT NULL""")


def downgrade() -> None:
    op.execute("""
        UPDATE leads SET alike_words = ARRAY(
            SELECT cluster || '/' || target_market || '/' || word FROM unnest(alike_words) AS word)
        WHERE alike_words IS NOT NULL""")
