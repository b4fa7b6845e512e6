"""``Idempotency-Key`` on POSTs that create or change something.

Same key + same request → the stored response (no second job, no second
hold); same key + a different request → 422; same key while the first is
still being handled → 409 with ``Retry-After``. Keys are per account and
kept 24 hours.

It holds through any failure (``store.idempotency`` has the SQL):
- Work that creates or moves money stores its response *in the same
  transaction* as the work (``Idempotency.complete``): a job, its hold and
  its key record commit together or not at all.
- Once that commit happened the record is never deleted or released, so a
  retry always replays it, whatever failed afterwards (the read back, the
  database, the process).
- A record left in flight (a crash, a lost database) holds a lease of
  ``idempotency_lease_seconds``; a retry after it takes the key over. The
  lease's owner token fences the first handler out should it ever wake up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from reelgate.api.errors import error_response
from reelgate.errors import Conflict, ReelgateError, ValidationFailed, idempotency_taken_over
from reelgate.runtime import Runtime
from reelgate.store.base import Tx
from reelgate.store.db import is_unavailable
from reelgate.store.jobs import now_ms
from reelgate.store.submit import StoredAnswer

__all__ = ["IDEMPOTENCY_TTL_MS", "Idempotency", "idempotent"]

log = logging.getLogger(__name__)
IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000


class Idempotency:
    """The key a request holds while its handler runs."""

    def __init__(self, account_id: str, key: str, owner: str) -> None:
        self.account_id = account_id
        self.key = key
        self.owner = owner
        self.done = False

    async def complete(self, tx: Tx, status: int, body: Any) -> None:
        """Store the response inside the caller's transaction (the one doing the work).
        Raises 409 if a retry took the key over meanwhile: the work must roll back."""
        if not await tx.complete_idempotency(self.account_id, self.key, self.owner, status, body):
            raise idempotency_taken_over()
        self.done = True

    def answer(self, status: int, body: Any) -> StoredAnswer:
        """The response to store with work the store writes in one call (``submit``);
        the caller marks ``done`` once that call succeeded."""
        return StoredAnswer(self.key, self.owner, status, body)


async def _request_hash(request: Request) -> str:
    body = await request.body()
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


async def _claim(rt: Runtime, idem: Idempotency, request_hash: str) -> JSONResponse | None:
    """Own the key; or answer from what is already recorded."""
    now = now_ms()
    lease_ms = int(rt.settings.idempotency_lease_seconds * 1000)
    async with rt.store.begin() as tx:
        record = await tx.claim_idempotency(
            idem.account_id,
            idem.key,
            request_hash,
            owner=idem.owner,
            now=now,
            lease_ms=lease_ms,
            ttl_ms=IDEMPOTENCY_TTL_MS,
        )
    if record is None:
        return None
    if record.request_hash != request_hash:
        return error_response(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request; use a new key "
            "for a new request.",
        )
    if record.state != "done":
        wait = max(1, math.ceil(((record.lease_expires_at or now) - now) / 1000))
        return error_response(
            409,
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being handled; retry in "
            f"{wait} s with the same key.",
            {"Retry-After": str(wait)},
            retry_after=wait,
        )
    return JSONResponse(
        record.response_body,
        status_code=record.response_status or 200,
        headers={"Idempotent-Replayed": "true"},
    )


def _storable(exc: ReelgateError) -> bool:
    """A client error is an answer too: the same request gets it again. Not so for
    "try again later" answers (409 in progress, 429, any 5xx, an error not ``lasting``)."""
    return exc.lasting and exc.http_status < 500 and exc.http_status not in (409, 429)


async def _release(rt: Runtime, idem: Idempotency) -> None:
    """End the lease after a failure, so a retry need not wait for it. Always safe: if
    the work did commit (its answer with it), the record is done and this changes
    nothing. Best effort: if the database is gone too, the lease simply runs out."""
    with contextlib.suppress(Exception):
        async with rt.store.begin() as tx:
            await tx.release_idempotency(idem.account_id, idem.key, idem.owner)


async def _store(rt: Runtime, idem: Idempotency, status: int, body: Any) -> None:
    try:
        async with rt.store.begin() as tx:
            await idem.complete(tx, status, body)
    except Conflict:
        pass  # taken over meanwhile: the new owner's outcome stands
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The answer still goes out; the record stays in flight until its lease ends
        # and a retry runs the (repeatable) handler again.
        log.warning("could not store the answer for Idempotency-Key: database unavailable")


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii():
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 printable ASCII characters (a UUID is ideal).",
            param="Idempotency-Key",
        )


async def idempotent(
    request: Request,
    rt: Runtime,
    account_id: str,
    handler: Callable[[Idempotency | None], Awaitable[JSONResponse]],
) -> JSONResponse:
    """Run ``handler`` at most once per Idempotency-Key. A handler whose work creates
    something or moves money stores its response atomically with the work
    (``Idempotency.complete``); otherwise the response is stored here afterwards,
    and the handler must be safe to run again should that store be lost."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return await handler(None)
    _check_key(key)
    idem = Idempotency(account_id, key, uuid.uuid4().hex)
    replay = await _claim(rt, idem, await _request_hash(request))
    if replay is not None:
        return replay
    try:
        response = await handler(idem)
    except ReelgateError as exc:
        if _storable(exc) and not idem.done:
            await _store(rt, idem, exc.http_status, {"error": exc.to_dict()})
        else:
            await _release(rt, idem)
        raise
    except BaseException:
        # Whether the work's transaction committed is unknown (a commit whose answer
        # was lost): releasing is right either way, see _release.
        await _release(rt, idem)
        raise
    if not idem.done:
        await _store(rt, idem, response.status_code, json.loads(bytes(response.body)))
    return response
