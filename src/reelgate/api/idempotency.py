"""``Idempotency-Key`` on POSTs that create or change something.

Same key + same request → the stored response (no second job, no second
hold); same key + a different request → 422; same key while the first is
still being handled → 409. Keys are per account and kept 24 hours.

For job creation the stored response is written in the *same transaction* as
the job and its hold (``engine.commands.submit_job``'s ``on_created`` hook), so
a crash can never leave a job without its idempotency record or the reverse.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.api.errors import error_response
from reelgate.errors import ReelgateError, ValidationFailed
from reelgate.runtime import Runtime
from reelgate.store.jobs import now_ms
from reelgate.store.schema import idempotency_keys

__all__ = ["IDEMPOTENCY_TTL_MS", "Idempotency", "idempotent"]

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
_t = idempotency_keys


@dataclass(frozen=True)
class Idempotency:
    account_id: str
    key: str

    async def complete(self, conn: AsyncConnection, status: int, body: Any) -> None:
        """Store the response (inside the caller's transaction)."""
        await conn.execute(
            _t.update()
            .where(_t.c.account_id == self.account_id, _t.c.key == self.key)
            .values(state="done", response_status=status, response_body=body)
        )


async def _request_hash(request: Request) -> str:
    body = await request.body()
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


async def _claim(rt: Runtime, account_id: str, key: str, request_hash: str) -> JSONResponse | None:
    """Record the key as in flight; or answer from what is already recorded."""
    now = now_ms()
    async with rt.db.begin() as conn:
        await conn.execute(
            _t.delete().where(
                _t.c.account_id == account_id,
                _t.c.key == key,
                _t.c.created_at < now - IDEMPOTENCY_TTL_MS,
            )
        )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        inserted = await conn.execute(
            dialect.insert(_t)
            .values(
                account_id=account_id,
                key=key,
                request_hash=request_hash,
                state="in_flight",
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        if inserted.rowcount == 1:
            return None
        row = (
            await conn.execute(sa.select(_t).where(_t.c.account_id == account_id, _t.c.key == key))
        ).one()
    if row.request_hash != request_hash:
        return error_response(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request; use a new key "
            "for a new request.",
        )
    if row.state != "done":
        return error_response(
            409,
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being handled; retry shortly.",
            {"Retry-After": "1"},
        )
    return JSONResponse(
        row.response_body,
        status_code=row.response_status,
        headers={"Idempotent-Replayed": "true"},
    )


async def _forget(rt: Runtime, idem: Idempotency) -> None:
    async with rt.db.begin() as conn:
        await conn.execute(
            _t.delete().where(_t.c.account_id == idem.account_id, _t.c.key == idem.key)
        )


async def idempotent(
    request: Request,
    rt: Runtime,
    account_id: str,
    handler: Callable[[Idempotency | None], Awaitable[JSONResponse]],
) -> JSONResponse:
    """Run ``handler`` at most once per Idempotency-Key. The handler may store its own
    response atomically with its work (``Idempotency.complete``); otherwise it is
    stored here after the handler returns."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return await handler(None)
    if not 1 <= len(key) <= 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters.", param="Idempotency-Key"
        )
    replay = await _claim(rt, account_id, key, await _request_hash(request))
    if replay is not None:
        return replay
    idem = Idempotency(account_id, key)
    try:
        response = await handler(idem)
    except ReelgateError as exc:
        if exc.http_status >= 500:
            await _forget(rt, idem)
            raise
        # a client error is an answer too: the same request gets it again
        async with rt.db.begin() as conn:
            await idem.complete(conn, exc.http_status, {"error": exc.to_dict()})
        raise
    except BaseException:
        await _forget(rt, idem)
        raise
    async with rt.db.begin() as conn:
        row = (
            await conn.execute(
                sa.select(_t.c.state).where(_t.c.account_id == account_id, _t.c.key == key)
            )
        ).scalar()
        if row != "done":
            await idem.complete(conn, response.status_code, json.loads(bytes(response.body)))
    return response
