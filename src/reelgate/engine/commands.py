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
from datetime import UTC, datetime
from pathlib import Path

from reelgate.billing import hold_for
from reelgate.errors import (
    Conflict,
    Gone,
    NotFound,
    ReelgateError,
    TooManyInFlight,
    idempotency_taken_over,
)
from reelgate.ids import new_id, new_job_id
from reelgate.job import Event, Job, JobParams, JobState, MirrorStatus, PublicStatus
from reelgate.runtime import Runtime
from reelgate.storage.keys import stored_keys
from reelgate.store.base import Tx
from reelgate.store.budgets import budget_exceeded
from reelgate.store.jobs import now_ms
from reelgate.store.ledger import not_enough
from reelgate.store.submit import JobSubmission, StoredAnswer, SubmitOutcome, SubmitResult

__all__ = [
    "Answer",
    "NewJob",
    "delete_job",
    "request_cancel",
    "retry_mirror",
    "set_pinned",
    "store_input",
    "submit_job",
    "video_expired",
]


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
    webhook_url: str | None = None
    key_id: str | None = None
    """The API key submitting it: its budgets apply besides the account's."""
    job_id: str | None = None
    """Chosen by the caller, who records it before submitting (a storyboard's shot): a
    submit cut short is then found, or made again under the same id, never twice."""


async def store_input(rt: Runtime, name: str, account_id: str, data: bytes) -> str:
    """Store a request's inline image; its storage key."""
    key = f"inputs/{account_id}/{name}"
    with tempfile.NamedTemporaryFile(prefix="reelgate-input-") as fh:
        fh.write(data)
        fh.flush()
        await rt.storage.put_file(key, Path(fh.name), "application/octet-stream")
    return key


Answer = Callable[[Job], Awaitable[StoredAnswer]]
"""The response for a new job, stored with it for its Idempotency-Key to replay."""


async def submit_job(
    rt: Runtime,
    new: NewJob,
    *,
    answer: Answer | None = None,
) -> Job:
    """Write a queued job, its hold, its ledger line and its first event in one
    transaction sent as one call (``store.submit``), and wake a worker. Returns at once;
    nothing waits for video. With ``answer``, the response it makes for the job is stored
    in the same transaction, for the Idempotency-Key to replay.

    The job returned is the one just written, not read back: once the transaction
    has committed, nothing can fail between it and the answer to the client."""
    job_id = new.job_id or new_job_id()
    now = now_ms()
    params = new.params
    if new.image is not None:
        key = await store_input(rt, job_id, new.account_id, new.image)
        params = replace(params, image_key=key, image_mime_type=new.image_mime_type)
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
        hold_id=new_id("hold"),
        webhook_url=new.webhook_url,
        key_id=new.key_id,
    )
    limits = rt.settings
    sub = JobSubmission(
        job=job,
        hold_amount=hold_for(
            rt.catalog,
            list(new.chain),
            params.resolution,
            params.duration_seconds,
            audio=params.audio,
            provider_params=params.provider_params,
        ),
        event=Event("video.queued", PublicStatus.QUEUED, 0),
        max_jobs=limits.max_jobs_in_flight,
        max_seconds=limits.max_seconds_in_flight,
        answer=await answer(job) if answer is not None else None,
    )
    result = await rt.store.submit(sub)
    if result.outcome is not SubmitOutcome.OK:
        if result.outcome is SubmitOutcome.OVER_BUDGET and result.budget is not None:
            raise budget_exceeded(result.budget, rt.settings.credit())
        raise _refusal(sub, result)
    rt.wakeup.notify()
    return job


IN_FLIGHT_RETRY_AFTER = 5


def _refusal(sub: JobSubmission, result: SubmitResult) -> ReelgateError:
    """The error for a submit the store refused, with the numbers behind it."""
    job, outcome = sub.job, result.outcome
    seconds, max_jobs, max_seconds = job.params.duration_seconds, sub.max_jobs, sub.max_seconds
    if outcome is SubmitOutcome.NO_ACCOUNT:
        return NotFound(f"No account {job.account_id!r}.", param="account_id")
    if outcome is SubmitOutcome.NOT_ENOUGH:
        return not_enough(result.balance, sub.hold_amount)
    if outcome is SubmitOutcome.TOO_MANY_JOBS:
        return TooManyInFlight(
            f"This account already has {result.jobs_in_flight} jobs queued or in progress "
            f"(the limit is {max_jobs}); wait for some to finish.",
            code="too_many_jobs_in_flight",
            limit=max_jobs,
            retry_after=IN_FLIGHT_RETRY_AFTER,
        )
    if outcome is SubmitOutcome.TOO_MANY_SECONDS:
        return TooManyInFlight(
            f"This account already has {result.seconds_in_flight} s of video in flight; "
            f"{seconds} s more would pass the limit of {max_seconds} s. Wait for some jobs "
            "to finish.",
            code="too_many_seconds_in_flight",
            limit=max_seconds,
            retry_after=IN_FLIGHT_RETRY_AFTER,
        )
    return idempotency_taken_over()


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
    for key in stored_keys(job.result, job.params):
        await rt.storage.delete(key)
    async with rt.store.begin() as tx:
        await tx.hide_job(account_id, job_id, now_ms())


async def _kept_in(tx: Tx, rt: Runtime, account_id: str, job_id: str) -> Job:
    """The account's job, read in ``tx``: 404 if there is none, 410 if retention expired
    its video."""
    job = await tx.get_job(job_id, account_id)
    if job is None:
        raise NotFound(f"No video job {job_id!r}.", param="id")
    if job.expired_at is not None:
        raise video_expired(job, rt.settings.retention_days)
    return job


async def set_pinned(rt: Runtime, account_id: str, job_id: str, pinned: bool) -> Job:
    """Keep a delivered video for ever (or again only for the retention period). An
    expired one is gone: 410."""
    async with rt.store.begin() as tx:
        job = await _kept_in(tx, rt, account_id, job_id)
        if job.completed_at is None or job.result is None:
            raise Conflict(
                f"Video job {job_id} has no video to pin yet (status {job.status.value}).",
                code="video_not_ready",
                status=job.status.value,
            )
        changed = await tx.set_pinned(account_id, job_id, pinned, now_ms())
        pinned_job = await tx.get_job(job_id, account_id)
    assert pinned_job is not None
    if not changed and pinned_job.expired_at is not None:
        raise video_expired(pinned_job, rt.settings.retention_days)  # the sweep came first
    return pinned_job


def video_expired(job: Job, retention_days: float) -> Gone:
    when = datetime.fromtimestamp((job.expired_at or 0) / 1000, UTC).strftime("%Y-%m-%d")
    return Gone(
        f"The video of job {job.id} was deleted on {when}: videos are kept {retention_days:g} "
        "days unless pinned (POST /v1/videos/{id}/pin). The job, its bill and its usage "
        "line remain.",
        code="video_expired",
        expired_at=(job.expired_at or 0) // 1000,
    )


async def retry_mirror(rt: Runtime, account_id: str, job_id: str) -> Job:
    now = now_ms()
    async with rt.store.begin() as tx:
        job = await _kept_in(tx, rt, account_id, job_id)
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
