"""What the API may ask of the engine: create a job, cancel it, retry its mirror.

These are the only writes to a job outside a worker step, and each is a
single guarded UPDATE/INSERT, so it cannot race a worker into an impossible
state: a job a worker holds is only *marked* for cancel, and the worker acts
on the mark at its next step.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.billing import hold_for, place_hold, release_hold
from reelgate.engine.events import Event, record_event
from reelgate.engine.wakeup import notify_in_transaction
from reelgate.errors import Conflict, NotFound, TooManyInFlight
from reelgate.ids import new_job_id
from reelgate.runtime import Runtime
from reelgate.store.db import reading
from reelgate.store.jobs import Job, get_job, insert_job, now_ms
from reelgate.store.schema import ACTIVE_STATES, jobs

__all__ = ["NewJob", "OnCreated", "delete_job", "request_cancel", "retry_mirror", "submit_job"]


@dataclass(frozen=True)
class NewJob:
    account_id: str
    chain: list[str]
    prompt: str
    params: dict[str, Any]
    deadline_seconds: int
    source: str = "native"
    metadata: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None
    image_mime_type: str | None = None


async def _store_image(rt: Runtime, job_id: str, account_id: str, data: bytes) -> str:
    key = f"inputs/{account_id}/{job_id}"
    with tempfile.NamedTemporaryFile(prefix="reelgate-input-") as fh:
        fh.write(data)
        fh.flush()
        await rt.storage.put_file(key, Path(fh.name), "application/octet-stream")
    return key


OnCreated = Callable[[AsyncConnection, Job], Awaitable[None]]


async def submit_job(rt: Runtime, new: NewJob, *, on_created: OnCreated | None = None) -> Job:
    """Insert a queued job, its hold and its first event, and wake a worker. Returns at
    once; nothing waits for video. ``on_created`` runs inside the same transaction
    (the API stores the Idempotency-Key response there).

    The job returned is the one just written, not read back: once the transaction
    has committed, nothing can fail between it and the answer to the client."""
    job_id = new_job_id()
    now = now_ms()
    params = dict(new.params)
    if new.image is not None:
        params["image_key"] = await _store_image(rt, job_id, new.account_id, new.image)
        params["image_mime_type"] = new.image_mime_type
    values: dict[str, Any] = {
        "id": job_id,
        "account_id": new.account_id,
        "source": new.source,
        "model": new.chain[0],
        "chain": list(new.chain),
        "chain_index": 0,
        "attempt_no": 0,
        "state": "queued",
        "prompt": new.prompt,
        "params": params,
        "metadata": dict(new.metadata),
        "progress": 0,
        "poll_count": 0,
        "retries": 0,
        "attempts": [],
        "cancel_requested": False,
        "next_run_at": now,
        "event_seq": 1,
        "deadline_at": now + new.deadline_seconds * 1000,
        "created_at": now,
        "updated_at": now,
    }
    seconds = int(params["duration_seconds"])
    amount = hold_for(rt.catalog, new.chain, str(params["resolution"]), seconds)
    async with rt.db.begin() as conn:
        # Hold first: it locks the account row, so concurrent submits queue here
        # and each sees the holds of the ones before it.
        values["hold_id"] = await place_hold(conn, new.account_id, job_id, amount)
        await _check_in_flight(rt, conn, new.account_id, seconds)
        await insert_job(conn, values)
        job = Job.new(values)
        await record_event(conn, job_id, 1, Event("video.queued", "queued", 0))
        if on_created is not None:
            await on_created(conn, job)
        await notify_in_transaction(conn, job_id)
    rt.wakeup.notify()
    return job


IN_FLIGHT_RETRY_AFTER = 5


async def _check_in_flight(
    rt: Runtime, conn: AsyncConnection, account_id: str, seconds: int
) -> None:
    """Per-account caps on work in flight. Runs after the hold locked the account row,
    so concurrent submits are counted one after another."""
    row = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(jobs.c.params["duration_seconds"].as_integer()), 0),
                # unfinished jobs are exactly those with a wake-up (ix_jobs_active_account)
            ).where(jobs.c.account_id == account_id, jobs.c.next_run_at.is_not(None))
        )
    ).one()
    count, in_flight = int(row[0]), int(row[1])
    limits = rt.settings
    if count + 1 > limits.max_jobs_in_flight:
        raise TooManyInFlight(
            f"This account already has {count} jobs queued or in progress (the limit is "
            f"{limits.max_jobs_in_flight}); wait for some to finish.",
            code="too_many_jobs_in_flight",
            limit=limits.max_jobs_in_flight,
            retry_after=IN_FLIGHT_RETRY_AFTER,
        )
    if in_flight + seconds > limits.max_seconds_in_flight:
        raise TooManyInFlight(
            f"This account already has {in_flight} s of video in flight; {seconds} s more "
            f"would pass the limit of {limits.max_seconds_in_flight} s. Wait for some jobs "
            "to finish.",
            code="too_many_seconds_in_flight",
            limit=limits.max_seconds_in_flight,
            retry_after=IN_FLIGHT_RETRY_AFTER,
        )


async def _load(rt: Runtime, job_id: str, account_id: str) -> Job:
    async with reading(rt.db) as conn:
        job = await get_job(conn, job_id, account_id)
    if job is None:
        raise NotFound(f"No video job {job_id!r}.", param="id")
    return job


async def request_cancel(rt: Runtime, account_id: str, job_id: str) -> Job:
    now = now_ms()
    owned = (jobs.c.id == job_id) & (jobs.c.account_id == account_id)
    async with rt.db.begin() as conn:
        # A queued job nobody holds is canceled on the spot.
        direct = (
            await conn.execute(
                jobs.update()
                .where(owned, jobs.c.state == "queued")
                .where(sa.or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at < now))
                .values(
                    state="canceled",
                    completed_at=now,
                    next_run_at=None,
                    updated_at=now,
                    units_consumed=0,
                    cost=0,
                    event_seq=jobs.c.event_seq + 1,
                )
                .returning(jobs.c.hold_id, jobs.c.event_seq, jobs.c.progress)
            )
        ).first()
        if direct is not None:
            canceled = Event("video.canceled", "canceled", int(direct.progress))
            await record_event(conn, job_id, int(direct.event_seq), canceled)
            if direct.hold_id:
                await release_hold(conn, direct.hold_id)
        if direct is None:
            # Otherwise mark it and make it due; the worker cancels upstream.
            # (a delivered video whose copy is still being retried is not: it was
            # completed and paid for)
            await conn.execute(
                jobs.update()
                .where(owned, jobs.c.state.in_(ACTIVE_STATES), jobs.c.completed_at.is_(None))
                .values(cancel_requested=True, next_run_at=now, updated_at=now)
            )
            await notify_in_transaction(conn, job_id)
    rt.wakeup.notify()
    rt.events.notify(job_id)
    job = await _load(rt, job_id, account_id)
    if job.state == "failed" or (job.completed_at is not None and job.state != "canceled"):
        status = "failed" if job.state == "failed" else "completed"
        raise Conflict(
            f"Video job {job_id} is already {status}; only queued or in-progress jobs "
            "can be canceled.",
            code="not_cancelable",
            status=status,
        )
    return job


async def delete_job(rt: Runtime, account_id: str, job_id: str) -> None:
    """Remove a finished job's stored video and hide the job. The row, its events and
    its ledger entries stay: billing history is never deleted."""
    job = await _load(rt, job_id, account_id)
    delivered = job.completed_at is not None  # final, or completed with its copy retrying
    if not (job.is_final or delivered):
        raise Conflict(
            f"Video job {job_id} is still {job.state}; cancel it first, then delete it.",
            code="video_not_final",
        )
    for key in ((job.result or {}).get("key"), job.params.get("image_key")):
        if key:
            await rt.storage.delete(key)
    async with rt.db.begin() as conn:
        # the row stays (usage, ledger); a background mirror retry stops with it
        await conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.account_id == account_id)
            .where(jobs.c.completed_at.is_not(None) | jobs.c.next_run_at.is_(None))
            .values(
                deleted_at=now_ms(),
                updated_at=now_ms(),
                next_run_at=None,
                state=sa.case((jobs.c.state == "mirroring", "completed"), else_=jobs.c.state),
            )
        )


async def retry_mirror(rt: Runtime, account_id: str, job_id: str) -> Job:
    now = now_ms()
    async with rt.db.begin() as conn:
        job = await get_job(conn, job_id, account_id)
        if job is None:
            raise NotFound(f"No video job {job_id!r}.", param="id")
        mirror_status = (job.result or {}).get("mirror_status")
        delivered = job.completed_at is not None and job.state in ("completed", "mirroring")
        if not delivered or mirror_status != "failed":
            raise Conflict(
                f"Video job {job_id} has nothing to re-mirror (status {job.state}, "
                f"mirror_status {mirror_status}); only completed jobs whose mirror failed can.",
                code="mirror_not_retryable",
            )
        # Now, and with a fresh round of background tries; a job still retrying by itself
        # is only made due at once (the worker holding it, if any, keeps it).
        # `updated_at` unchanged since the read: a mirror that a worker stored meanwhile
        # is never overwritten with this stale result (PostgreSQL reads committed data
        # here, not a snapshot)
        changed = await conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state.in_(("completed", "mirroring")))
            .where(jobs.c.updated_at == job.updated_at)
            .values(
                state="mirroring",
                retries=0,
                next_run_at=now,
                updated_at=now,
                result={**(job.result or {}), "mirror_status": "pending", "mirror_tries": 0},
            )
        )
        if changed.rowcount != 1:
            raise Conflict(
                f"Video job {job_id} changed while this request was handled; look at it again.",
                code="mirror_not_retryable",
            )
        await notify_in_transaction(conn, job_id)
    rt.wakeup.notify()
    return await _load(rt, job_id, account_id)
