"""The duplicate search's words compare byte by byte, and go straight into their index.

Every POST asks the `alike_words` index for leads alike. With a pending list (0009), each
search also read the whole list, comparing words by the database's collation: the search was
nearly a quarter of the Postgres instructions of a POST, most of it in the pending list, more
than writing each lead's words into the index at once costs. The words are codes of a search,
never sorted for people, so collation "C" compares them as bytes: cheaper in every search and
every insert.

Postgres instructions per POST at 20,000 leads, counted by callgrind over 2,000 POSTs (the
method of bench/postgres_instructions.py): 3.73 M before, 3.25 M after.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rebuilds the index, so its pending list is empty before inserts stop using one.
    op.alter_column("leads", "alike_words", type_=ARRAY(sa.Text(collation="C")))
    op.execute("ALTER INDEX leads_alike_words SET (fastupdate = off)")
    op.execute("ALTER INDEX leads_alike_words RESET (gin_pending_list_limit)")


def downgrade() -> None:
    op.execute("ALTER INDEX leads_alike_words SET (fastupdate = on, gin_pending_list_limit = 64)")
    op.alter_column("leads", "alike_words", type_=ARRAY(sa.Text))
