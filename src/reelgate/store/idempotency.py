"""Idempotency-Key records: the SQL behind ``api.idempotency``.

A record is ``in_flight`` while one request handles it, then ``done`` with
the response to replay. An in-flight record carries a lease (``owner``,
``lease_expires_at``): a handler that crashed or lost the database simply
stops renewing nothing, its lease runs out, and a retry takes the record
over. ``owner`` is the fence: completing requires still owning the record,
so a handler that froze past its lease can never store a second outcome.

Every statement here is guarded by the record's state, so a concurrent
takeover and completion cannot both win: on PostgreSQL the second waits for
the first's row lock and re-checks its WHERE clause; SQLite has one writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.store.schema import idempotency_keys as _t

__all__ = ["KeyRecord", "claim_key", "complete_key", "release_key"]


@dataclass(frozen=True)
class KeyRecord:
    request_hash: str
    state: str
    response_status: int | None
    response_body: Any
    lease_expires_at: int | None


def _this(account_id: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(_t.c.account_id == account_id, _t.c.key == key)


async def claim_key(
    conn: AsyncConnection,
    account_id: str,
    key: str,
    request_hash: str,
    *,
    owner: str,
    now: int,
    lease_ms: int,
    ttl_ms: int,
) -> KeyRecord | None:
    """Take the key for ``owner``. None: it is ours now (new, or taken over from a handler
    whose lease ran out without finishing). Otherwise the record as it stands."""
    await conn.execute(_t.delete().where(_this(account_id, key), _t.c.created_at < now - ttl_ms))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = await conn.execute(
        dialect.insert(_t)
        .values(
            account_id=account_id,
            key=key,
            request_hash=request_hash,
            state="in_flight",
            created_at=now,
            owner=owner,
            lease_expires_at=now + lease_ms,
        )
        .on_conflict_do_nothing()
    )
    if inserted.rowcount == 1:
        return None
    # The same request, abandoned: no job (or other outcome) ever committed with it,
    # since completing commits in the same transaction as the work.
    taken = await conn.execute(
        _t.update()
        .where(
            _this(account_id, key),
            _t.c.state == "in_flight",
            _t.c.request_hash == request_hash,
            sa.or_(
                _t.c.lease_expires_at < now,
                # records from before leases existed: their age is their lease
                sa.and_(_t.c.lease_expires_at.is_(None), _t.c.created_at < now - lease_ms),
            ),
        )
        .values(owner=owner, lease_expires_at=now + lease_ms)
    )
    if taken.rowcount == 1:
        return None
    row = (await conn.execute(sa.select(_t).where(_this(account_id, key)))).one()
    return KeyRecord(
        request_hash=row.request_hash,
        state=row.state,
        response_status=row.response_status,
        response_body=row.response_body,
        lease_expires_at=row.lease_expires_at,
    )


async def complete_key(
    conn: AsyncConnection, account_id: str, key: str, owner: str, status: int, body: Any
) -> bool:
    """Store the response, in the caller's transaction, if ``owner`` still holds the key."""
    result = await conn.execute(
        _t.update()
        .where(_this(account_id, key), _t.c.owner == owner, _t.c.state == "in_flight")
        .values(
            state="done",
            response_status=status,
            response_body=body,
            owner=None,
            lease_expires_at=None,
        )
    )
    return result.rowcount == 1


async def release_key(conn: AsyncConnection, account_id: str, key: str, owner: str) -> None:
    """End ``owner``'s lease at once (its handler failed before any outcome committed),
    so the client's retry runs without waiting for the lease to run out."""
    await conn.execute(
        _t.update()
        .where(_this(account_id, key), _t.c.owner == owner, _t.c.state == "in_flight")
        .values(lease_expires_at=0)
    )
