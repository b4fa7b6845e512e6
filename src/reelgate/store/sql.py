"""The store on SQLite or PostgreSQL (SQLAlchemy): ``store.base`` over the SQL modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.catalog.lifecycle import Unavailable
from reelgate.job import Event, Job, JobResult, PublicStatus
from reelgate.store import (
    accounts,
    ambiguous,
    cooldowns,
    events,
    hooks,
    idempotency,
    ledger,
    usage,
)
from reelgate.store import jobs as sql_jobs
from reelgate.store.accounts import ALL_SCOPES, KeyInfo, KeyRow
from reelgate.store.ambiguous import AmbiguousCreate
from reelgate.store.base import AmbiguousRecord, Store
from reelgate.store.db import one_call, reading
from reelgate.store.events import StoredEvent
from reelgate.store.idempotency import KeyRecord
from reelgate.store.ledger import Balance
from reelgate.store.step import StepWrite, postgres_step, sqlite_step
from reelgate.store.submit import (
    JobSubmission,
    SubmitResult,
    postgres_submit,
    sqlite_submit,
    submission_rows,
)
from reelgate.store.usage import UsageDay
from reelgate.store.wakeup import notify_in_transaction

__all__ = ["SqlStore", "SqlTx"]


class SqlTx:
    """One SQLAlchemy transaction (or read-only connection)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get_job(
        self, job_id: str, account_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        return await sql_jobs.get_job(
            self.conn, job_id, account_id, include_deleted=include_deleted
        )

    async def insert_job(self, job: Job) -> None:
        await sql_jobs.insert_job(self.conn, job)

    async def write_step(
        self, before: Job, after: Job, worker_id: str, *, release: bool, now: int | None = None
    ) -> bool:
        return await sql_jobs.write_step(
            self.conn, before, after, worker_id, release=release, now=now
        )

    async def cancel_if_queued(self, account_id: str, job_id: str, now: int) -> Job | None:
        return await sql_jobs.cancel_if_queued(self.conn, account_id, job_id, now)

    async def mark_cancel_requested(self, account_id: str, job_id: str, now: int) -> None:
        await sql_jobs.mark_cancel_requested(self.conn, account_id, job_id, now)

    async def hide_job(self, account_id: str, job_id: str, now: int) -> None:
        await sql_jobs.hide_job(self.conn, account_id, job_id, now)

    async def set_pinned(self, account_id: str, job_id: str, pinned: bool, now: int) -> bool:
        return await sql_jobs.set_pinned(self.conn, account_id, job_id, pinned, now)

    async def restart_mirror(self, job: Job, result: JobResult, now: int) -> bool:
        return await sql_jobs.restart_mirror(self.conn, job, result, now)

    async def in_flight_totals(self, account_id: str) -> tuple[int, int]:
        return await sql_jobs.in_flight_totals(self.conn, account_id)

    async def lock_provider(self, provider: str) -> None:
        await sql_jobs.lock_provider(self.conn, provider)

    async def count_occupying(self, provider: str, except_job: str) -> int:
        return await sql_jobs.count_occupying(self.conn, provider, except_job)

    async def count_submitting(self, provider: str, except_job: str) -> int:
        return await sql_jobs.count_submitting(self.conn, provider, except_job)

    async def active_upstream_ids(self, provider: str) -> set[str]:
        return await sql_jobs.active_upstream_ids(self.conn, provider)

    async def known_upstream_ids(self, upstream_ids: Sequence[str]) -> set[str]:
        return await sql_jobs.known_upstream_ids(self.conn, upstream_ids)

    async def list_jobs(
        self,
        account_id: str,
        *,
        limit: int,
        after: str | None = None,
        status: PublicStatus | None = None,
        model: str | None = None,
        order: str = "desc",
        include_deleted: bool = False,
    ) -> list[Job]:
        return await sql_jobs.list_jobs(
            self.conn,
            account_id,
            limit=limit,
            after=after,
            status=status,
            model=model,
            order=order,
            include_deleted=include_deleted,
        )

    async def daily_usage(self, account_id: str, start_ms: int, end_ms: int) -> list[UsageDay]:
        return await usage.daily_usage(self.conn, account_id, start_ms, end_ms)

    async def lookup_key(self, key: str, now: int) -> KeyInfo | None:
        return await accounts.lookup_key(self.conn, key, now)

    async def get_flags(self, account_id: str) -> dict[str, Any]:
        return await accounts.get_flags(self.conn, account_id)

    async def claim_idempotency(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        *,
        owner: str,
        now: int,
        lease_ms: int,
        ttl_ms: int,
    ) -> KeyRecord | None:
        return await idempotency.claim_key(
            self.conn,
            account_id,
            key,
            request_hash,
            owner=owner,
            now=now,
            lease_ms=lease_ms,
            ttl_ms=ttl_ms,
        )

    async def release_idempotency(self, account_id: str, key: str, owner: str) -> None:
        await idempotency.release_key(self.conn, account_id, key, owner)

    async def record_event(self, job_id: str, seq: int, event: Event, now: int) -> None:
        await events.insert_event(self.conn, job_id, seq, event, now)

    async def events_after(self, job_id: str, seq: int) -> list[StoredEvent]:
        return await events.events_after(self.conn, job_id, seq)

    async def wake(self, job_id: str) -> None:
        await notify_in_transaction(self.conn, job_id)

    async def record_delivery(self, delivery_id: str, provider: str, job_id: str, now: int) -> bool:
        return await hooks.record_delivery(self.conn, delivery_id, provider, job_id, now)

    async def running_job_for(self, upstream_id: str) -> str | None:
        return await hooks.running_job_for(self.conn, upstream_id)

    async def poll_now(
        self, job_id: str, upstream_id: str, now: int, pushed: JobResult | None = None
    ) -> bool:
        return await hooks.poll_now(self.conn, job_id, upstream_id, now, pushed)

    async def get_balance(self, account_id: str) -> Balance:
        return await ledger.get_balance(self.conn, account_id)

    async def place_hold(self, account_id: str, job_id: str, amount: int) -> str:
        return await ledger.place_hold(self.conn, account_id, job_id, amount)

    async def capture_hold(self, hold_id: str, amount: int) -> bool:
        return await ledger.capture_hold(self.conn, hold_id, amount)

    async def release_hold(self, hold_id: str) -> bool:
        return await ledger.release_hold(self.conn, hold_id)

    async def record_ambiguous(self, record: AmbiguousRecord, now: int) -> None:
        await ambiguous.record_ambiguous(
            self.conn,
            job_id=record.job_id,
            attempt_no=record.attempt_no,
            model=record.model,
            provider=record.provider,
            upstream_id=record.upstream_id,
            sent_at=record.sent_at,
            outcome=record.outcome,
            note=record.note,
            now=now,
        )

    async def complete_idempotency(
        self, account_id: str, key: str, owner: str, status: int, body: Any
    ) -> bool:
        return await idempotency.complete_key(self.conn, account_id, key, owner, status, body)

    async def create_account(self, name: str, account_id: str | None = None) -> str:
        return await accounts.create_account(self.conn, name, account_id)

    async def ensure_account(self, account_id: str, name: str) -> bool:
        return await accounts.ensure_account(self.conn, account_id, name)

    async def account_exists(self, account_id: str) -> bool:
        return await accounts.account_exists(self.conn, account_id)

    async def set_flags(self, account_id: str, flags: Mapping[str, Any]) -> dict[str, Any]:
        return await accounts.set_flags(self.conn, account_id, **flags)

    async def grant(self, account_id: str, amount: int, note: str) -> Balance:
        return await ledger.grant(self.conn, account_id, amount, note)

    async def create_key(
        self,
        account_id: str,
        *,
        key: str | None = None,
        scopes: Sequence[str] = ALL_SCOPES,
        name: str = "",
        expires_at: int | None = None,
    ) -> str:
        return await accounts.create_key(
            self.conn, account_id, key=key, scopes=scopes, name=name, expires_at=expires_at
        )

    async def ensure_key(self, account_id: str, key: str, name: str) -> None:
        await accounts.ensure_key(self.conn, account_id, key, name)

    async def key_row(self, key: str) -> KeyRow:
        return await accounts.key_row(self.conn, key)

    async def key_rows(self, account_id: str) -> list[KeyRow]:
        return await accounts.key_rows(self.conn, account_id)

    async def revoke_key(self, key_id: str, account_id: str | None, now: int) -> bool | None:
        return await accounts.revoke(self.conn, key_id, account_id, now)

    async def list_ambiguous(
        self, *, include_resolved: bool = False, limit: int = 100
    ) -> list[AmbiguousCreate]:
        return await ambiguous.list_ambiguous(
            self.conn, include_resolved=include_resolved, limit=limit
        )

    async def resolve_ambiguous(self, row_id: str, resolution: str, now: int) -> bool:
        return await ambiguous.resolve_ambiguous(self.conn, row_id, resolution, now)


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[SqlTx]:
        async with self.engine.begin() as conn:
            yield SqlTx(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SqlTx]:
        async with reading(self.engine) as conn:
            yield SqlTx(conn)

    async def submit(self, sub: JobSubmission) -> SubmitResult:
        rows = submission_rows(sub)
        return await one_call(
            self.engine,
            partial(sqlite_submit, sub, rows),
            partial(postgres_submit, sub=sub, rows=rows),
        )

    async def record_step(self, step: StepWrite) -> bool:
        return await one_call(
            self.engine, partial(sqlite_step, step), partial(postgres_step, step=step)
        )

    async def claim_due(
        self,
        worker_id: str,
        *,
        limit: int,
        lease_ms: int,
        now: int,
        in_hand: Sequence[str] = (),
    ) -> list[Job]:
        return await sql_jobs.claim_due(
            self.engine, worker_id, limit=limit, lease_ms=lease_ms, now=now, in_hand=in_hand
        )

    async def renew_leases(
        self, worker_id: str, job_ids: Sequence[str], lease_ms: int, now: int
    ) -> int:
        return await sql_jobs.renew_leases(self.engine, worker_id, job_ids, lease_ms, now)

    async def release_leases(self, worker_id: str) -> int:
        return await sql_jobs.release_leases(self.engine, worker_id)

    async def next_wakeup(self) -> int | None:
        return await sql_jobs.next_wakeup(self.engine)

    async def count_active(self) -> int:
        return await sql_jobs.count_active(self.engine)

    async def start_cooldown(self, deployment: str, until: int, reason: str, now: int) -> None:
        await cooldowns.start_cooldown(self.engine, deployment, until, reason, now)

    async def list_cooling(self, now: int) -> dict[str, int]:
        return await cooldowns.list_cooling(self.engine, now)

    async def mark_unavailable(self, record: Unavailable) -> None:
        await cooldowns.mark_unavailable(self.engine, record)

    async def list_unavailable(self, now: int) -> list[Unavailable]:
        return await cooldowns.list_unavailable(self.engine, now)

    async def clear_unavailable(self, deployment: str) -> bool:
        return await cooldowns.clear_unavailable(self.engine, deployment)


def _is_a_store(store: SqlStore) -> Store:
    return store  # mypy holds the implementation to the interface
