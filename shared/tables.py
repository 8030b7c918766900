"""Tables every service has in its own schema: outbox, inbox, API keys, idempotency, audit.

They carry no schema name: each service's search_path puts them in its own schema.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()
TIMESTAMP = sa.DateTime(timezone=True)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("published_at", TIMESTAMP),
    # A row no broker will ever take (too large, malformed): kept, marked, and passed over.
    sa.Column("failed_at", TIMESTAMP),
    sa.Column("error", sa.Text),
)
sa.Index("outbox_unpublished", outbox.c.id,
         postgresql_where=sa.and_(outbox.c.published_at.is_(None), outbox.c.failed_at.is_(None)))
sa.Index("outbox_published_at", outbox.c.published_at)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("trace_id", sa.Text),
    sa.Column("handled_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("cluster", sa.Text),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", TIMESTAMP),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("api_key_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("body", JSONB),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("api_key_id", UUID(as_uuid=True)),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)
