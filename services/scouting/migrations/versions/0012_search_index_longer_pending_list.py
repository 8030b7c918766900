"""Lead search index with a 1 MB pending list: a merge per ~1,500 leads instead of per ~80.

0007 kept the pending list at 64 kB because every duplicate check read through it; since 0009
no POST reads this index, only searches do. Each merge rewrites, whole, the entry of every word
the pending leads hold, so short lists made this index half of a POST's write-ahead log, which
every commit waits to reach the disk. A search now reads up to 1 MB of pending entries.

Per POST, 20,000 POSTs on a fresh database (bench/submit_cpu.py): 12.2 kB of WAL before, 8.3 kB
after (4 MB: 8.1 kB). Postgres instructions per POST at 20,000 leads, 5,000 POSTs counted
(bench/postgres_instructions.py --count 5000): 1.89 M before, 1.73 M after.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER INDEX leads_search SET (gin_pending_list_limit = 1024)")


def downgrade() -> None:
    op.execute("ALTER INDEX leads_search SET (gin_pending_list_limit = 64)")
