"""Job rows and every piece of SQL the engine runs against them.

The engine's correctness rests on three statements here, each commented:
the claim (who may work on a job now), the fenced write (only the lease
holder may record a step), and lease renewal/release.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.store.db import reading
from reelgate.store.schema import ACTIVE_STATES, ambiguous_creates, jobs

__all__ = [
    "Job",
    "active_upstream_ids",
    "claim_due",
    "count_active",
    "count_occupying",
    "count_submitting",
    "fenced_update",
    "get_job",
    "insert_job",
    "known_upstream_ids",
    "list_jobs",
    "next_wakeup",
    "now_ms",
    "release_leases",
    "renew_leases",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Job:
    id: str
    account_id: str
    source: str
    model: str
    chain: list[str]
    chain_index: int
    attempt_no: int
    state: str
    prompt: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    progress: int
    upstream_id: str | None
    running_since: int | None
    poll_count: int
    retries: int
    attempts: list[dict[str, Any]]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    cancel_requested: bool
    next_run_at: int | None
    deadline_at: int
    lease_owner: str | None
    lease_expires_at: int | None
    created_at: int
    updated_at: int
    completed_at: int | None
    hold_id: str | None = None
    delivered_by: str | None = None
    units_consumed: int | None = None
    cost: int | None = None
    event_seq: int = 0
    deleted_at: int | None = None
    active_provider: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @classmethod
    def new(cls, values: Mapping[str, Any]) -> Job:
        """The job ``insert_job(values)`` wrote (every column it left out is NULL)."""
        fields: dict[str, Any] = {name: values.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)

    @property
    def current_model(self) -> str:
        return self.chain[self.chain_index]

    @property
    def is_final(self) -> bool:
        return self.state not in ACTIVE_STATES


async def insert_job(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(jobs.insert().values(**values))


async def get_job(
    conn: AsyncConnection,
    job_id: str,
    account_id: str | None = None,
    *,
    include_deleted: bool = False,
) -> Job | None:
    query = sa.select(jobs).where(jobs.c.id == job_id)
    if not include_deleted:
        query = query.where(jobs.c.deleted_at.is_(None))
    if account_id is not None:
        # Object-level authorization lives in the query: another account's job
        # is indistinguishable from a missing one.
        query = query.where(jobs.c.account_id == account_id)
    row = (await conn.execute(query)).mappings().first()
    return Job.from_row(row) if row else None


async def list_jobs(
    conn: AsyncConnection,
    account_id: str,
    *,
    limit: int,
    after: str | None = None,
    states: Sequence[str] | None = None,
    model: str | None = None,
    order: str = "desc",
    include_deleted: bool = False,
) -> list[Job]:
    """Newest first by default; ids sort by creation time, so the id is the cursor."""
    query = sa.select(jobs).where(jobs.c.account_id == account_id)
    if not include_deleted:
        query = query.where(jobs.c.deleted_at.is_(None))
    if states:
        query = query.where(jobs.c.state.in_(states))
    if model:
        query = query.where(sa.or_(jobs.c.model == model, jobs.c.delivered_by == model))
    if order == "asc":
        if after:
            query = query.where(jobs.c.id > after)
        query = query.order_by(jobs.c.id.asc())
    else:
        if after:
            query = query.where(jobs.c.id < after)
        query = query.order_by(jobs.c.id.desc())
    rows = (await conn.execute(query.limit(limit))).mappings().all()
    return [Job.from_row(r) for r in rows]


async def claim_due(
    engine: AsyncEngine,
    worker_id: str,
    *,
    limit: int,
    lease_ms: int,
    now: int | None = None,
    in_hand: Sequence[str] = (),
) -> list[Job]:
    """Lease up to ``limit`` jobs whose wake-up time has come.

    One statement, so the choice and the lease are atomic:
    - ``next_run_at <= now``: only due jobs (finished jobs have NULL and are
      never scanned, thanks to the partial index ``ix_jobs_due``);
    - ``lease_expires_at IS NULL OR < now``: free, or held by a worker that
      stopped renewing (dead or partitioned) — its work is taken over;
    - ``FOR UPDATE SKIP LOCKED`` (PostgreSQL): concurrent claimers skip rows
      another transaction is claiming instead of waiting for or double-taking
      them. SQLite has one writer at a time (``BEGIN IMMEDIATE``), which gives
      the same guarantee;
    - ``ORDER BY next_run_at``: the most overdue first;
    - ``id NOT IN in_hand``: a job this worker is still stepping (its lease lapsed
      while the database was away) is never claimed a second time by the same
      worker, whose writes the fence could not tell apart.
    """
    now = now_ms() if now is None else now
    due = (
        sa.select(jobs.c.id)
        .where(jobs.c.next_run_at <= now)
        .where(sa.or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at < now))
        .order_by(jobs.c.next_run_at)
        .limit(limit)
    )
    if in_hand:
        due = due.where(jobs.c.id.not_in(list(in_hand)))
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            jobs.update()
            .where(jobs.c.id.in_(due.scalar_subquery()))
            .values(lease_owner=worker_id, lease_expires_at=now + lease_ms)
            .returning(*jobs.c)
        )
        rows = (await conn.execute(stmt)).mappings().all()
    return [Job.from_row(r) for r in rows]


async def fenced_update(
    engine: AsyncEngine | AsyncConnection,
    job_id: str,
    worker_id: str,
    values: Mapping[str, Any],
    *,
    release: bool,
) -> bool:
    """Record a step's outcome, only if this worker still holds the lease.

    The ``lease_owner`` clause is the fence: a worker whose lease expired (and
    was taken over) writes nothing, and learns so from the row count.
    ``release`` also drops the lease in the same statement, so the job's new
    state, wake-up and lease change together.
    """
    values = dict(values)
    values["updated_at"] = now_ms()
    if release:
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    stmt = jobs.update().where(jobs.c.id == job_id).where(jobs.c.lease_owner == worker_id)
    if isinstance(engine, AsyncConnection):
        result = await engine.execute(stmt.values(**values))
        return result.rowcount == 1
    async with engine.begin() as conn:
        result = await conn.execute(stmt.values(**values))
        return result.rowcount == 1


async def renew_leases(
    engine: AsyncEngine, worker_id: str, job_ids: Sequence[str], lease_ms: int
) -> int:
    """Extend the leases this worker holds on jobs still in hand; returns how many."""
    if not job_ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            jobs.update()
            .where(jobs.c.id.in_(list(job_ids)))
            .where(jobs.c.lease_owner == worker_id)
            .values(lease_expires_at=now_ms() + lease_ms)
        )
        return int(result.rowcount)


async def release_leases(engine: AsyncEngine, worker_id: str) -> int:
    """Give back every lease this worker holds (graceful shutdown)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            jobs.update()
            .where(jobs.c.lease_owner == worker_id)
            .values(lease_owner=None, lease_expires_at=None)
        )
        return int(result.rowcount)


async def next_wakeup(engine: AsyncEngine) -> int | None:
    """The earliest time any job may need a worker: a free job's wake-up, or a
    held job's lease running out (its worker may have died)."""
    async with reading(engine) as conn:
        free = (
            await conn.execute(
                # `next_run_at IS NOT NULL` lets SQLite use the partial index
                # instead of scanning every finished job
                sa.select(sa.func.min(jobs.c.next_run_at)).where(
                    jobs.c.next_run_at.is_not(None), jobs.c.lease_owner.is_(None)
                )
            )
        ).scalar()
        held = (
            await conn.execute(
                sa.select(sa.func.min(jobs.c.lease_expires_at)).where(
                    jobs.c.next_run_at.is_not(None), jobs.c.lease_owner.is_not(None)
                )
            )
        ).scalar()
    times = [t for t in (free, held) if t is not None]
    return min(times) if times else None


async def count_occupying(conn: AsyncConnection, provider: str, except_job: str) -> int:
    """Jobs currently submitted to ``provider`` (for per-deployment caps)."""
    query = (
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(jobs.c.active_provider == provider, jobs.c.id != except_job)
    )
    return int((await conn.execute(query)).scalar_one())


async def active_upstream_ids(conn: AsyncConnection, provider: str) -> set[str]:
    """The upstream jobs that jobs in flight on ``provider`` are following."""
    query = sa.select(jobs.c.upstream_id).where(
        jobs.c.active_provider == provider, jobs.c.upstream_id.is_not(None)
    )
    return {row[0] for row in await conn.execute(query)}


async def known_upstream_ids(conn: AsyncConnection, upstream_ids: Sequence[str]) -> set[str]:
    """Which of these upstream jobs a job already uses (or an operator was told of):
    never adopted by another job."""
    if not upstream_ids:
        return set()
    ids = list(upstream_ids)
    used = await conn.execute(sa.select(jobs.c.upstream_id).where(jobs.c.upstream_id.in_(ids)))
    listed = await conn.execute(
        sa.select(ambiguous_creates.c.upstream_id).where(ambiguous_creates.c.upstream_id.in_(ids))
    )
    return {row[0] for row in used} | {row[0] for row in listed}


async def count_submitting(conn: AsyncConnection, provider: str, except_job: str) -> int:
    """Jobs of ``provider`` in ``submitting`` (a create may be in flight), but one."""
    query = (
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(
            jobs.c.active_provider == provider,
            jobs.c.state == "submitting",
            jobs.c.id != except_job,
        )
    )
    return int((await conn.execute(query)).scalar_one())


async def count_active(engine: AsyncEngine) -> int:
    async with reading(engine) as conn:
        query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.next_run_at.is_not(None))
        return int((await conn.execute(query)).scalar_one())
