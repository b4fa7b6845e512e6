"""The webhook tables (``store.schema``): endpoints, default secrets, the outbox and the
deliveries. Every function takes the connection of a transaction its caller holds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.ids import new_id
from reelgate.store.schema import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_outbox,
    webhook_secrets,
)
from reelgate.webhooks.signing import new_secret

__all__ = [
    "EVENT_TYPES",
    "HISTORY_KEPT",
    "Delivery",
    "Endpoint",
    "OutboxRow",
    "backlog",
    "claim_due",
    "create_endpoint",
    "default_secret",
    "delivery_id",
    "event_id",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "redeliver",
    "rotate_default_secret",
    "rotate_endpoint",
    "set_endpoint_enabled",
    "settle",
    "take_outbox",
]

EVENT_TYPES = (
    "video.queued",
    "video.in_progress",
    "video.progress",
    "video.completed",
    "video.failed",
    "video.canceled",
    "video.expired",
    "budget.warning",
    "budget.exceeded",
)
"""What an endpoint may subscribe to (``events``); OpenAI's names where it has them
(``video.completed``, ``video.failed``), the job stream's own for the rest, and an
account's budget reaching 80 % (``budget.warning``) or 100 % (``budget.exceeded``,
also a first refusal), ``store.budgets``."""

HISTORY_KEPT = 20
"""Attempts kept in a delivery's history (the count goes on)."""


def event_id(job_id: str, seq: int) -> str:
    """The event's id, the same however often it is fanned out."""
    return "evt_" + hashlib.sha256(f"{job_id}:{seq}".encode()).hexdigest()[:32]


def delivery_id(job_id: str, seq: int, target: str) -> str:
    """The ``webhook-id``: one per event and target, kept on every retry."""
    return "msg_" + hashlib.sha256(f"{job_id}:{seq}:{target}".encode()).hexdigest()[:32]


# ── endpoints ──


@dataclass(frozen=True)
class Endpoint:
    id: str
    account_id: str
    url: str
    description: str
    events: tuple[str, ...]
    secret: str
    previous_secret: str | None
    previous_until: int | None
    disabled_at: int | None
    disabled_reason: str | None
    created_at: int
    updated_at: int

    def wants(self, event_type: str) -> bool:
        return self.disabled_at is None and (not self.events or event_type in self.events)

    def signing(self, now: int) -> list[str]:
        """The secrets that sign now: the current one, and the previous one while the
        rotation overlap lasts."""
        keys = [self.secret]
        if self.previous_secret and (self.previous_until or 0) > now:
            keys.append(self.previous_secret)
        return keys

    def to_wire(self) -> dict[str, Any]:
        """Never the secret: that is shown once, when made (``create``, ``rotate``)."""
        return {
            "id": self.id,
            "object": "webhook_endpoint",
            "account_id": self.account_id,
            "url": self.url,
            "description": self.description,
            "events": list(self.events) or None,
            "status": "disabled" if self.disabled_at is not None else "enabled",
            "disabled_reason": self.disabled_reason,
            "previous_secret_valid_until": (
                self.previous_until // 1000 if self.previous_until else None
            ),
            "created_at": self.created_at // 1000,
        }


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        account_id=row.account_id,
        url=row.url,
        description=row.description,
        events=tuple(row.events or ()),
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_until=row.previous_until,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def create_endpoint(
    conn: AsyncConnection,
    account_id: str,
    url: str,
    events: Sequence[str],
    description: str,
    now: int,
) -> Endpoint:
    row = {
        "id": new_id("we"),
        "account_id": account_id,
        "url": url,
        "description": description,
        "events": list(events),
        "secret": new_secret(),
        "previous_secret": None,
        "previous_until": None,
        "disabled_at": None,
        "disabled_reason": None,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(webhook_endpoints.insert(), row)
    return _endpoint(_RowView(row))


class _RowView:
    """Attribute access to a dict, to build values from rows just written."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


async def get_endpoint(conn: AsyncConnection, endpoint_id: str) -> Endpoint | None:
    row = (
        await conn.execute(
            sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        )
    ).first()
    return _endpoint(row) if row is not None else None


async def list_endpoints(
    conn: AsyncConnection, account_id: str, *, enabled_only: bool = False
) -> list[Endpoint]:
    t = webhook_endpoints
    query = sa.select(t).where(t.c.account_id == account_id).order_by(t.c.id)
    if enabled_only:
        query = query.where(t.c.disabled_at.is_(None))
    return [_endpoint(r) for r in (await conn.execute(query)).all()]


async def _endpoints_by_id(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, Endpoint]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = (
        await conn.execute(sa.select(webhook_endpoints).where(webhook_endpoints.c.id.in_(wanted)))
    ).all()
    return {r.id: _endpoint(r) for r in rows}


async def rotate_endpoint(
    conn: AsyncConnection, endpoint_id: str, keep_ms: int, now: int
) -> Endpoint | None:
    """A new secret; the old one goes on signing beside it for ``keep_ms``."""
    found = await get_endpoint(conn, endpoint_id)
    if found is None:
        return None
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            secret=new_secret(),
            previous_secret=found.secret if keep_ms > 0 else None,
            previous_until=now + keep_ms if keep_ms > 0 else None,
            updated_at=now,
        )
    )
    return await get_endpoint(conn, endpoint_id)


async def set_endpoint_enabled(
    conn: AsyncConnection, endpoint_id: str, *, enabled: bool, reason: str | None, now: int
) -> Endpoint | None:
    """Disable (with why) or enable again. Disabling stops its pending deliveries too
    (status ``disabled``; ``redeliver`` sends one again once the endpoint is enabled)."""
    t = webhook_endpoints
    await conn.execute(
        t.update()
        .where(t.c.id == endpoint_id)
        .values(
            disabled_at=None if enabled else now,
            disabled_reason=None if enabled else (reason or "disabled by an operator"),
            updated_at=now,
        )
    )
    if not enabled:
        d = webhook_deliveries
        await conn.execute(
            d.update()
            .where(d.c.endpoint_id == endpoint_id, d.c.status == "pending")
            .values(status="disabled", next_attempt_at=None, updated_at=now)
        )
    return await get_endpoint(conn, endpoint_id)


# ── the default secret (a request's own webhook_url) ──


def _insert_ignoring_conflict(conn: AsyncConnection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def default_secret(conn: AsyncConnection, account_id: str, now: int) -> list[str]:
    """The secrets that sign an account's per-request deliveries now (the current one
    first), made on first use."""
    t = webhook_secrets
    row = (await conn.execute(sa.select(t).where(t.c.account_id == account_id))).first()
    if row is None:
        await conn.execute(
            _insert_ignoring_conflict(conn, t)
            .values(account_id=account_id, secret=new_secret(), created_at=now, updated_at=now)
            .on_conflict_do_nothing()
        )
        row = (await conn.execute(sa.select(t).where(t.c.account_id == account_id))).one()
    keys = [row.secret]
    if row.previous_secret and (row.previous_until or 0) > now:
        keys.append(row.previous_secret)
    return keys


async def rotate_default_secret(
    conn: AsyncConnection, account_id: str, keep_ms: int, now: int
) -> str:
    current = (await default_secret(conn, account_id, now))[0]
    fresh = new_secret()
    await conn.execute(
        webhook_secrets.update()
        .where(webhook_secrets.c.account_id == account_id)
        .values(
            secret=fresh,
            previous_secret=current if keep_ms > 0 else None,
            previous_until=now + keep_ms if keep_ms > 0 else None,
            updated_at=now,
        )
    )
    return fresh


# ── the outbox ──


@dataclass(frozen=True)
class OutboxRow:
    id: int
    job_id: str
    seq: int
    type: str
    created_at: int
    account_id: str | None = None
    payload: str | None = None
    """An account's event (a budget's): its data as the database wrote it."""


async def take_outbox(conn: AsyncConnection, limit: int) -> list[OutboxRow]:
    """Up to ``limit`` outbox rows, oldest first, deleted in the caller's transaction (so
    they come back if it rolls back). On PostgreSQL rows another worker is taking are
    skipped, not waited for."""
    t = webhook_outbox
    query = sa.select(t).order_by(t.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [
        OutboxRow(r.id, r.job_id, r.seq, r.type, r.created_at, r.account_id, r.payload)
        for r in (await conn.execute(query)).all()
    ]
    if rows:
        await conn.execute(t.delete().where(t.c.id.in_([r.id for r in rows])))
    return rows


async def last_progress_sent(conn: AsyncConnection, job_ids: Iterable[str]) -> dict[str, int]:
    """Per ``job_id:target``, when its last progress delivery was made (for the throttle)."""
    d = webhook_deliveries
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    rows = (
        await conn.execute(
            sa.select(d.c.job_id, d.c.endpoint_id, sa.func.max(d.c.created_at))
            .where(
                d.c.job_id.in_(wanted),
                d.c.event_type.in_(("video.progress", "video.in_progress")),
            )
            .group_by(d.c.job_id, d.c.endpoint_id)
        )
    ).all()
    return {f"{job}:{endpoint or 'request'}": int(at) for job, endpoint, at in rows}


async def insert_deliveries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """New deliveries; one already there (the same event fanned out twice) is kept."""
    if rows:
        await conn.execute(
            _insert_ignoring_conflict(conn, webhook_deliveries).on_conflict_do_nothing(),
            list(rows),
        )


# ── deliveries ──


@dataclass(frozen=True)
class Delivery:
    id: str
    account_id: str
    job_id: str
    event_id: str
    event_type: str
    event_seq: int
    endpoint_id: str | None
    url: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: int | None
    last_status: int | None
    last_error: str | None
    history: tuple[dict[str, Any], ...]
    created_at: int
    delivered_at: int | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "webhook_delivery",
            "event_id": self.event_id,
            "event_type": self.event_type,
            "job_id": self.job_id,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": (
                self.next_attempt_at // 1000
                if self.next_attempt_at and self.status == "pending"
                else None
            ),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "history": list(self.history),
            "created_at": self.created_at // 1000,
            "delivered_at": self.delivered_at // 1000 if self.delivered_at else None,
        }


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        account_id=row.account_id,
        job_id=row.job_id,
        event_id=row.event_id,
        event_type=row.event_type,
        event_seq=row.event_seq,
        endpoint_id=row.endpoint_id,
        url=row.url,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        history=tuple(row.history or ()),
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


async def claim_due(
    conn: AsyncConnection, now: int, lease_ms: int, limit: int
) -> list[tuple[Delivery, Endpoint | None]]:
    """Due pending deliveries, each leased: ``next_attempt_at`` moved to the lease's end,
    so one whose sender died comes due again (at least once). A job's deliveries to one
    target are sent one after another, so the n-th of them is leased n times as long.
    Each returned delivery carries its lease in ``next_attempt_at``, the fence its
    ``settle`` must match. With their endpoints."""
    d = webhook_deliveries
    query = (
        sa.select(d)
        .where(d.c.next_attempt_at <= now, d.c.status == "pending")
        .order_by(d.c.next_attempt_at, d.c.job_id, d.c.event_seq)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = [_delivery(r) for r in (await conn.execute(query)).all()]
    if not rows:
        return []
    position: dict[tuple[str, str | None], int] = {}
    by_lease: dict[int, list[str]] = {}
    leased = []
    for r in sorted(rows, key=lambda r: (r.job_id, r.endpoint_id or "", r.event_seq)):
        group = (r.job_id, r.endpoint_id)
        position[group] = position.get(group, 0) + 1
        lease = now + lease_ms * position[group]
        by_lease.setdefault(lease, []).append(r.id)
        leased.append(replace(r, next_attempt_at=lease))
    for lease, ids in by_lease.items():
        await conn.execute(
            d.update().where(d.c.id.in_(ids)).values(next_attempt_at=lease, updated_at=now)
        )
    endpoints = await _endpoints_by_id(conn, (r.endpoint_id for r in rows if r.endpoint_id))
    return [(r, endpoints.get(r.endpoint_id) if r.endpoint_id else None) for r in leased]


async def settle(
    conn: AsyncConnection,
    delivery: Delivery,
    *,
    status: str,
    next_attempt_at: int | None,
    http_status: int | None,
    error: str | None,
    attempt: dict[str, Any],
    now: int,
) -> bool:
    """Record an attempt: ``status`` pending (with when to try again) or final. Only
    while the claim's lease holds (``delivery.next_attempt_at``, the fence): a delivery
    another worker took over after the lease ran out, or that was redelivered or
    stopped meanwhile, keeps its new state (False)."""
    d = webhook_deliveries
    row = (
        await conn.execute(
            sa.select(d.c.history, d.c.status, d.c.next_attempt_at).where(d.c.id == delivery.id)
        )
    ).first()
    if row is None or row.status != "pending" or row.next_attempt_at != delivery.next_attempt_at:
        return False
    history = [*(row.history or ()), attempt][-HISTORY_KEPT:]
    result = await conn.execute(
        d.update()
        .where(
            d.c.id == delivery.id,
            d.c.status == "pending",
            d.c.next_attempt_at == delivery.next_attempt_at,
        )
        .values(
            status=status,
            attempts=d.c.attempts + 1,
            next_attempt_at=next_attempt_at if status == "pending" else None,
            last_status=http_status,
            last_error=error[:500] if error else None,
            history=history,
            delivered_at=now if status == "delivered" else None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def list_deliveries(conn: AsyncConnection, job_id: str) -> list[Delivery]:
    d = webhook_deliveries
    rows = (
        await conn.execute(sa.select(d).where(d.c.job_id == job_id).order_by(d.c.event_seq, d.c.id))
    ).all()
    return [_delivery(r) for r in rows]


async def redeliver(
    conn: AsyncConnection, job_id: str, delivery_id: str, now: int
) -> Delivery | None:
    """Send a delivery again now, whatever became of it, with a new round of attempts
    (the same ``webhook-id`` and body)."""
    d = webhook_deliveries
    await conn.execute(
        d.update()
        .where(d.c.id == delivery_id, d.c.job_id == job_id)
        .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
    )
    row = (
        await conn.execute(sa.select(d).where(d.c.id == delivery_id, d.c.job_id == job_id))
    ).first()
    return _delivery(row) if row is not None else None


async def backlog(conn: AsyncConnection, now: int) -> tuple[int, int, int | None]:
    """(outbox rows not yet fanned out, pending deliveries, the oldest due one's age ms)."""
    d = webhook_deliveries
    outbox = (
        await conn.execute(sa.select(sa.func.count()).select_from(webhook_outbox))
    ).scalar_one()
    pending, oldest = (
        await conn.execute(
            sa.select(sa.func.count(), sa.func.min(d.c.next_attempt_at)).where(
                d.c.next_attempt_at.is_not(None)
            )
        )
    ).one()
    age = now - int(oldest) if oldest is not None and int(oldest) <= now else None
    return int(outbox), int(pending), age
