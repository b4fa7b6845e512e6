"""What the API may ask of the engine: create a job, cancel it, retry its mirror.

These are the only writes to a job outside a worker step, and each is a
single guarded UPDATE/INSERT, so it cannot race a worker into an impossible
state: a job a worker holds is only *marked* for cancel, and the worker acts
on the mark at its next step.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from reelgate.billing import hold_for
from reelgate.errors import Conflict, NotFound, TooManyInFlight
from reelgate.ids import new_job_id
from reelgate.job import Event, Job, JobParams, JobState, MirrorStatus, PublicStatus
from reelgate.runtime import Runtime
from reelgate.store.base import Tx
from reelgate.store.jobs import now_ms

__all__ = ["NewJob", "OnCreated", "delete_job", "request_cancel", "retry_mirror", "submit_job"]


@dataclass(frozen=True)
class NewJob:
    account_id: str
    chain: Sequence[str]
    """The requested model, then its fallbacks."""
    prompt: str
    params: JobParams
    deadline_seconds: int
    source: str = "native"
    metadata: Mapping[str, str] = field(default_factory=dict)
    image: bytes | None = None
    image_mime_type: str | None = None


async def _store_image(rt: Runtime, job_id: str, account_id: str, data: bytes) -> str:
    key = f"inputs/{account_id}/{job_id}"
    with tempfile.NamedTemporaryFile(prefix="reelgate-input-") as fh:
        fh.write(data)
        fh.flush()
        await rt.storage.put_file(key, Path(fh.name), "application/octet-stream")
    return key


OnCreated = Callable[[Tx, Job], Awaitable[None]]


async def submit_job(rt: Runtime, new: NewJob, *, on_created: OnCreated | None = None) -> Job:
    """Insert a queued job, its hold and its first event, and wake a worker. Returns at
    once; nothing waits for video. ``on_created`` runs inside the same transaction
    (the API stores the Idempotency-Key response there).

    The job returned is the one just written, not read back: once the transaction
    has committed, nothing can fail between it and the answer to the client."""
    job_id = new_job_id()
    now = now_ms()
    params = new.params
    if new.image is not None:
        key = await _store_image(rt, job_id, new.account_id, new.image)
        params = replace(params, image_key=key, image_mime_type=new.image_mime_type)
    seconds = params.duration_seconds
    amount = hold_for(rt.catalog, list(new.chain), params.resolution, seconds)
    async with rt.store.begin() as tx:
        # Hold first: it locks the account row, so concurrent submits queue here
        # and each sees the holds of the ones before it.
        hold_id = await tx.place_hold(new.account_id, job_id, amount)
        await _check_in_flight(rt, tx, new.account_id, seconds)
        job = Job(
            id=job_id,
            account_id=new.account_id,
            source=new.source,
            model=new.chain[0],
            chain=tuple(new.chain),
            chain_index=0,
            attempt_no=0,
            state=JobState.QUEUED,
            prompt=new.prompt,
            params=params,
            metadata=dict(new.metadata),
            next_run_at=now,
            event_seq=1,
            deadline_at=now + new.deadline_seconds * 1000,
            created_at=now,
            updated_at=now,
            hold_id=hold_id,
        )
        await tx.insert_job(job)
        await tx.record_event(job_id, 1, Event("video.queued", PublicStatus.QUEUED, 0), now)
        if on_created is not None:
            await on_created(tx, job)
        await tx.wake(job_id)
    rt.wakeup.notify()
    return job


IN_FLIGHT_RETRY_AFTER = 5


async def _check_in_flight(rt: Runtime, tx: Tx, account_id: str, seconds: int) -> None:
    """Per-account caps on work in flight. Runs after the hold locked the account row,
    so concurrent submits are counted one after another."""
    count, in_flight = await tx.in_flight_totals(account_id)
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
    async with rt.store.reading() as tx:
        job = await tx.get_job(job_id, account_id)
    if job is None:
        raise NotFound(f"No video job {job_id!r}.", param="id")
    return job


async def request_cancel(rt: Runtime, account_id: str, job_id: str) -> Job:
    now = now_ms()
    async with rt.store.begin() as tx:
        # A queued job nobody holds is canceled on the spot; otherwise it is marked,
        # and its worker cancels it upstream at its next step.
        canceled = await tx.cancel_if_queued(account_id, job_id, now)
        if canceled is not None:
            event = Event("video.canceled", PublicStatus.CANCELED, canceled.progress)
            await tx.record_event(job_id, canceled.event_seq, event, now)
            if canceled.hold_id:
                await tx.release_hold(canceled.hold_id)
        else:
            await tx.mark_cancel_requested(account_id, job_id, now)
            await tx.wake(job_id)
    rt.wakeup.notify()
    rt.events.notify(job_id)
    job = await _load(rt, job_id, account_id)
    if job.state is JobState.FAILED or job.delivered:
        status = job.status
        raise Conflict(
            f"Video job {job_id} is already {status}; only queued or in-progress jobs "
            "can be canceled.",
            code="not_cancelable",
            status=status.value,
        )
    return job


async def delete_job(rt: Runtime, account_id: str, job_id: str) -> None:
    """Remove a finished job's stored video and hide the job. The row, its events and
    its ledger entries stay: billing history is never deleted."""
    job = await _load(rt, job_id, account_id)
    if not (job.is_final or job.completed_at is not None):
        raise Conflict(
            f"Video job {job_id} is still {job.state}; cancel it first, then delete it.",
            code="video_not_final",
        )
    for key in (job.result.key if job.result else None, job.params.image_key):
        if key:
            await rt.storage.delete(key)
    async with rt.store.begin() as tx:
        await tx.hide_job(account_id, job_id, now_ms())


async def retry_mirror(rt: Runtime, account_id: str, job_id: str) -> Job:
    now = now_ms()
    async with rt.store.begin() as tx:
        job = await tx.get_job(job_id, account_id)
        if job is None:
            raise NotFound(f"No video job {job_id!r}.", param="id")
        mirror_status = job.result.mirror_status if job.result else None
        if not job.delivered or job.result is None or mirror_status is not MirrorStatus.FAILED:
            raise Conflict(
                f"Video job {job_id} has nothing to re-mirror (status {job.state}, "
                f"mirror_status {mirror_status}); only completed jobs whose mirror failed can.",
                code="mirror_not_retryable",
            )
        # Now, and with a fresh round of background tries; a job still retrying by itself
        # is only made due at once (the worker holding it, if any, keeps it).
        again = replace(job.result, mirror_status=MirrorStatus.PENDING, mirror_tries=0)
        if not await tx.restart_mirror(job, again, now):
            raise Conflict(
                f"Video job {job_id} changed while this request was handled; look at it again.",
                code="mirror_not_retryable",
            )
        await tx.wake(job_id)
    rt.wakeup.notify()
    return await _load(rt, job_id, account_id)
