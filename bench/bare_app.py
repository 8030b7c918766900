"""The bare baseline of bench/intake.py: a FastAPI endpoint that inserts one row with asyncpg.

No auth, no validation beyond JSON, no outbox, no telemetry: what a POST costs at the least.
Run: BARE_DATABASE_URL=postgresql://... uvicorn bench.bare_app:app
"""

import json
import os
import uuid
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response

pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(app: FastAPI):  # noqa: ANN201
    global pool
    pool = await asyncpg.create_pool(os.environ["BARE_DATABASE_URL"], min_size=10, max_size=10)
    await pool.execute("CREATE TABLE IF NOT EXISTS bare_leads (id uuid PRIMARY KEY, body jsonb)")
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/rows", status_code=201)
async def insert(request: Request) -> Response:
    body = await request.body()
    row_id = uuid.uuid4()
    await pool.execute("INSERT INTO bare_leads (id, body) VALUES ($1, $2)", row_id, body.decode())
    return Response(json.dumps({"id": str(row_id)}), status_code=201,
                    media_type="application/json")
