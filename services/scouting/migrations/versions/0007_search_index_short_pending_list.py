"""Lead search index with a short pending list: cheap inserts, cheap reads.

Without a pending list (0004) every lead wrote each of its words into the index at once,
which was a third of the Postgres time of a POST. A pending list of the default 4 MB made
every duplicate check read through megabytes of unsorted entries. 64 kB, the least Postgres
allows, batches a few dozen leads per merge, and a duplicate check reads at most eight pages
more.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER INDEX leads_search SET (fastupdate = on, gin_pending_list_limit = 64)")


def downgrade() -> None:
    op.execute("ALTER INDEX leads_search SET (fastupdate = off)")
    op.execute("ALTER INDEX leads_search RESET (gin_pending_list_limit)")
