"""Job rows and every piece of SQL the engine runs against them.

The engine's correctness rests on three statements here, each commented:
the claim (who may work on a job now), the fenced write (only the lease
holder may record a step), and lease renewal/release.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.job import ACTIVE_STATES, Job, JobResult, JobState, PublicStatus
from reelgate.store.codec import encode_result, job_from_row, job_to_row
from reelgate.store.db import one_call, reading
from reelgate.store.schema import accounts, ambiguous_creates, jobs
from reelgate.store.sqlite_writer import decoded_rows
from reelgate.store.step import step_values

__all__ = [
    "Job",
    "active_upstream_ids",
    "cancel_if_queued",
    "claim_due",
    "count_active",
    "count_occupying",
    "count_submitting",
    "get_job",
    "hide_job",
    "in_flight_totals",
    "insert_job",
    "known_upstream_ids",
    "list_jobs",
    "lock_provider",
    "mark_cancel_requested",
    "next_wakeup",
    "now_ms",
    "release_leases",
    "renew_leases",
    "restart_mirror",
    "status_is",
    "write_step",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def insert_job(conn: AsyncConnection, job: Job) -> None:
    # parameters at execute time: the compiled INSERT is cached by its keys, where
    # .values(**row) builds and coerces a bind per column on every submit
    await conn.execute(_INSERT_JOB, job_to_row(job))


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
    return job_from_row(row) if row else None


async def list_jobs(
    conn: AsyncConnection,
    account_id: str,
    *,
    limit: int,
    after: str | None = None,
    status: PublicStatus | None = None,
    model: str | None = None,
    order: str = "desc",
    include_deleted: bool = False,
) -> list[Job]:
    """Newest first by default; ids sort by creation time, so the id is the cursor."""
    query = sa.select(jobs).where(jobs.c.account_id == account_id)
    if not include_deleted:
        query = query.where(jobs.c.deleted_at.is_(None))
    if status is not None:
        query = query.where(status_is(status))
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
    return [job_from_row(r) for r in rows]


def status_is(status: PublicStatus) -> sa.ColumnElement[bool]:
    """The rows whose public status is ``status`` (``reelgate.job.public_status`` in SQL:
    a ``mirroring`` job is ``completed`` once delivered, else ``in_progress``)."""
    state, delivered = jobs.c.state, jobs.c.completed_at.is_not(None)
    mirroring = state == JobState.MIRRORING.value
    if status is PublicStatus.COMPLETED:
        return (state == JobState.COMPLETED.value) | (mirroring & delivered)
    if status is PublicStatus.IN_PROGRESS:
        running = (JobState.SUBMITTING.value, JobState.RUNNING.value)
        return state.in_(running) | (mirroring & ~delivered)
    return state == status.value


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
    expires = now + lease_ms
    lite = (worker_id, expires, now, now, json.dumps(list(in_hand)), limit)
    pg = (worker_id, expires, now, list(in_hand), limit)
    rows: Sequence[Any] = await one_call(
        engine,
        lambda conn: decoded_rows(conn.execute(_SQLITE_CLAIM, lite), jobs),
        lambda conn: conn.fetch(_PG_CLAIM, *pg),
    )
    # RETURNING keeps no order: hand them out most overdue first, as chosen
    return sorted((job_from_row(r) for r in rows), key=lambda j: (j.next_run_at or 0, j.id))


# One statement, sent as one call (``store.db.one_call``): in autocommit on
# PostgreSQL, in the writer thread's transaction on SQLite.
_PG_CLAIM = """
UPDATE jobs SET lease_owner = $1, lease_expires_at = $2
WHERE id IN (
  SELECT id FROM jobs
  WHERE next_run_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at < $3)
    AND id <> ALL($4::text[])
  ORDER BY next_run_at LIMIT $5
  FOR UPDATE SKIP LOCKED)
RETURNING *
"""

_SQLITE_CLAIM = """
UPDATE jobs SET lease_owner = ?, lease_expires_at = ?
WHERE id IN (
  SELECT id FROM jobs
  WHERE next_run_at <= ? AND (lease_expires_at IS NULL OR lease_expires_at < ?)
    AND id NOT IN (SELECT value FROM json_each(?))
  ORDER BY next_run_at LIMIT ?)
RETURNING *
"""


_INSERT_JOB = jobs.insert()


async def write_step(
    conn: AsyncConnection,
    before: Job,
    after: Job,
    worker_id: str,
    *,
    release: bool,
    now: int | None = None,
) -> bool:
    """Record a step's outcome (the fields ``after`` changed against ``before``), only
    if this worker still holds the lease.

    The ``lease_owner`` clause is the fence: a worker whose lease expired (and
    was taken over) writes nothing, and learns so from the row count.
    ``release`` also drops the lease in the same statement, so the job's new
    state, wake-up and lease change together.
    """
    values = step_values(before, after, release=release, now=now_ms() if now is None else now)
    later = values.get("next_run_at")
    if later is not None:
        # Someone made the job due sooner while this step ran (a provider's call, a
        # cancel): the earlier time stands, or that wake-up would be lost.
        bumped = jobs.c.next_run_at.is_not(None) & (
            jobs.c.next_run_at.is_distinct_from(before.next_run_at)
        )
        values["next_run_at"] = sa.case(
            (bumped & (jobs.c.next_run_at < later), jobs.c.next_run_at), else_=later
        )
    stmt = jobs.update().where(jobs.c.id == before.id).where(jobs.c.lease_owner == worker_id)
    result = await conn.execute(stmt.values(**values))
    return result.rowcount == 1


async def renew_leases(
    engine: AsyncEngine,
    worker_id: str,
    job_ids: Sequence[str],
    lease_ms: int,
    now: int | None = None,
) -> int:
    """Extend the leases this worker holds on jobs still in hand; returns how many."""
    if not job_ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            jobs.update()
            .where(jobs.c.id.in_(list(job_ids)))
            .where(jobs.c.lease_owner == worker_id)
            .values(lease_expires_at=(now_ms() if now is None else now) + lease_ms)
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
            jobs.c.state == JobState.SUBMITTING.value,
            jobs.c.id != except_job,
        )
    )
    return int((await conn.execute(query)).scalar_one())


async def count_active(engine: AsyncEngine) -> int:
    async with reading(engine) as conn:
        query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.next_run_at.is_not(None))
        return int((await conn.execute(query)).scalar_one())


async def in_flight_totals(conn: AsyncConnection, account_id: str) -> tuple[int, int]:
    """An account's unfinished jobs: how many, and how many seconds of video they ask
    for (the counters the ``jobs`` triggers keep on the account's row)."""
    row = (
        await conn.execute(
            sa.select(accounts.c.jobs_in_flight, accounts.c.seconds_in_flight).where(
                accounts.c.id == account_id
            )
        )
    ).first()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


def _owned(account_id: str, job_id: str) -> sa.ColumnElement[bool]:
    return (jobs.c.id == job_id) & (jobs.c.account_id == account_id)


async def cancel_if_queued(
    conn: AsyncConnection, account_id: str, job_id: str, now: int
) -> Job | None:
    """Cancel a queued job that no worker holds, on the spot; the job as canceled, or
    None when it was not queued or a worker has it."""
    row = (
        (
            await conn.execute(
                jobs.update()
                .where(_owned(account_id, job_id), jobs.c.state == JobState.QUEUED.value)
                .where(sa.or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at < now))
                .values(
                    state=JobState.CANCELED.value,
                    completed_at=now,
                    next_run_at=None,
                    updated_at=now,
                    units_consumed=0,
                    cost=0,
                    event_seq=jobs.c.event_seq + 1,
                )
                .returning(*jobs.c)
            )
        )
        .mappings()
        .first()
    )
    return job_from_row(row) if row is not None else None


async def mark_cancel_requested(
    conn: AsyncConnection, account_id: str, job_id: str, now: int
) -> None:
    """Mark an unfinished job for cancel and make it due: its worker cancels upstream.
    A delivered video whose copy is still being retried is not: it was paid for."""
    await conn.execute(
        jobs.update()
        .where(_owned(account_id, job_id), jobs.c.state.in_(ACTIVE_STATES))
        .where(jobs.c.completed_at.is_(None))
        .values(cancel_requested=True, next_run_at=now, updated_at=now)
    )


async def hide_job(conn: AsyncConnection, account_id: str, job_id: str, now: int) -> None:
    """Hide a finished (or delivered) job. The row stays for usage and the ledger; a
    background mirror retry stops with it."""
    await conn.execute(
        jobs.update()
        .where(_owned(account_id, job_id))
        .where(jobs.c.completed_at.is_not(None) | jobs.c.next_run_at.is_(None))
        .values(
            deleted_at=now,
            updated_at=now,
            next_run_at=None,
            state=sa.case(
                (jobs.c.state == JobState.MIRRORING.value, JobState.COMPLETED.value),
                else_=jobs.c.state,
            ),
        )
    )


async def set_pinned(
    conn: AsyncConnection, account_id: str, job_id: str, pinned: bool, now: int
) -> bool:
    """Pin (keep for ever) or unpin a delivered video not yet expired (False: it was
    not such a video, e.g. the sweeper expired it meanwhile)."""
    result = await conn.execute(
        jobs.update()
        .where(_owned(account_id, job_id))
        .where(jobs.c.completed_at.is_not(None), jobs.c.expired_at.is_(None))
        .values(pinned_at=now if pinned else None, updated_at=now)
    )
    return bool(result.rowcount)


async def restart_mirror(conn: AsyncConnection, job: Job, result: JobResult, now: int) -> bool:
    """Make a delivered job's copy due again with ``result``, only if the job has not
    changed since it was read (``updated_at``): a copy a worker stored meanwhile is
    never overwritten with a stale result."""
    changed = await conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id)
        .where(jobs.c.state.in_((JobState.COMPLETED.value, JobState.MIRRORING.value)))
        .where(jobs.c.updated_at == job.updated_at, jobs.c.expired_at.is_(None))
        .values(
            state=JobState.MIRRORING.value,
            retries=0,
            next_run_at=now,
            updated_at=now,
            result=encode_result(result),
        )
    )
    return int(changed.rowcount) == 1


async def lock_provider(conn: AsyncConnection, provider: str) -> None:
    """Serialise slot-taking on ``provider`` until the transaction ends: an advisory
    lock on PostgreSQL; SQLite has one writer at a time already."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(provider))))
