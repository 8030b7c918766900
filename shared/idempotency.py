"""`Idempotency-Key` on POSTs: a retried request returns the first result, nothing twice.

The key is claimed inside the request's own transaction, so the stored answer commits with
the change it describes; a concurrent retry waits on the claim and then reads that answer.
"""

import hashlib
import json
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy.dialects.postgresql import insert

from shared.problems import Problem
from shared.tables import idempotency_keys
from shared.uow import Transaction

MAX_KEY_LENGTH = 200
# Visible ASCII, spaces inside only (HTTP trims them at the ends): a UUID, a hash, a row id.
KEY_PATTERN = f"^[!-~]([ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$"
# The header of every POST that takes one (a parameter: `key: IdempotencyKey = None`).
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN,
    description="Send the same key when retrying: one effect, the first answer. "
    f"1 to {MAX_KEY_LENGTH} visible ASCII characters.")]
LOCATION = {"Location": {"description": "The new record's URL.", "schema": {"type": "string"}}}


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


async def claim(
    tx: Transaction, *, api_key_id: UUID, key: str | None, body: Any
) -> JSONResponse | None:
    """Claim the key for this request, or return the answer given to the first one."""
    if key is None:
        return None
    fingerprint = request_fingerprint(body)
    claimed = await tx.session.execute(
        insert(idempotency_keys)
        .values(api_key_id=api_key_id, key=key, request_hash=fingerprint)
        .on_conflict_do_nothing()
        .returning(sa.literal(1))
    )
    if claimed.first() is not None:
        return None
    prior = (await tx.session.execute(
        sa.select(idempotency_keys).where(
            idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key)
    )).one()
    if prior.request_hash != fingerprint:
        raise Problem(409, "Idempotency-Key reused",
                      "This Idempotency-Key was used for a different request.")
    return JSONResponse(prior.body, status_code=prior.status_code,
                        headers={"Idempotent-Replayed": "true"})


async def remember(
    tx: Transaction, *, api_key_id: UUID, key: str | None, status_code: int, body: Any
) -> None:
    """Store the answer for the claimed key, in the same transaction as the change."""
    if key is None:
        return
    await tx.session.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key)
        .values(status_code=status_code, body=body)
    )
