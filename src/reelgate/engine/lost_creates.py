"""A create whose answer was lost: find out whether the upstream job exists.

The create was sent, and then the answer never arrived (a timeout, a 502/504,
a cut connection) or the worker that sent it died before recording it. The
upstream may or may not have started a job — one the operator pays for.
Re-sending blindly could start a second one, so, in order:

1. The provider dedupes creates by key (``idempotent_create``): send the same
   create again, with the same key.
2. The provider's API lists recent jobs (``providers.base.FindsLostCreates``):
   once the provider has surely recorded the create (``lost_create_settle_
   seconds`` past the provider's timeout), look for it. One candidate: adopt
   it (the job goes on polling it). Several: adopt the oldest and cancel the
   rest where the provider can; those left running are listed for operators.
   None: the create never arrived, so it is sent again.
3. Otherwise, or when the search keeps failing: never re-send. The job falls
   back to its next model (or fails ``upstream_unknown``), and the create is
   listed for operators (``ambiguous_creates``; admin API and CLI).

Upstream ids that another job already uses are never adopted.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reelgate.catalog import ModelSpec
from reelgate.engine.planner import ListCreate
from reelgate.engine.policy import MAX_TRANSIENT_RETRIES, backoff_seconds
from reelgate.errors import ProviderError, ReelgateError, TransientError
from reelgate.job import Job, JobError
from reelgate.providers.base import FindsLostCreates
from reelgate.store.base import AmbiguousRecord, Tx

if TYPE_CHECKING:
    from reelgate.engine.steps import Also, Stepper

__all__ = ["LOOKBACK_MS", "record_create", "settle_lost_create"]

log = logging.getLogger(__name__)

LOOKBACK_MS = 60_000
"""How far before the recorded send time a listed job may have been created (clocks
of reelgate and the provider disagree a little)."""


def record_create(
    job: Job, spec: ModelSpec, outcome: str, note: str, upstream_id: str | None, now: int
) -> Also:
    """The write that lists this job's create for operators (in the caller's transaction)."""

    record = AmbiguousRecord(
        job_id=job.id,
        attempt_no=job.attempt_no,
        model=spec.id,
        # the provider the create went to (a route of another provider, or its own)
        provider=(job.attempts[-1].provider if job.attempts else None) or spec.provider,
        upstream_id=upstream_id,
        sent_at=job.attempts[-1].create_sent_at if job.attempts else None,
        outcome=outcome,
        note=note,
    )

    async def write(tx: Tx) -> None:
        await tx.record_ambiguous(record, now)

    return write


async def _give_up(
    stepper: Stepper, job: Job, spec: ModelSpec, exc: ProviderError, why: str
) -> None:
    log.warning("job %s: create on %s left ambiguous: %s", job.id, spec.id, why)
    lost = TransientError(exc.message, code=exc.code, upstream_status=exc.upstream_status)
    await stepper.on_error(job, lost, unresolved=ListCreate("unknown", why))


async def settle_lost_create(
    stepper: Stepper, job: Job, spec: ModelSpec, exc: ProviderError
) -> None:
    kind = stepper.kind_of(job)
    provider = stepper.providers.get(kind)
    if provider is None:
        # Not configured in this process (a restart without its key, say): whether it
        # dedupes or can be searched is unknown here. Keep the create marked, look later.
        note = JobError("provider_unavailable", exc.message, error_class="transient")
        wait = stepper.clock() + int(backoff_seconds(job.retries, base=5.0) * 1000) + 1000
        await stepper.wait_then_retry(job, wait, note, count=False)
        return
    if provider.idempotent_create:
        # The same key cannot start a second job: a plain transient retry re-sends it.
        retry = TransientError(exc.message, code=exc.code, upstream_status=exc.upstream_status)
        await stepper.on_error(job, retry)
        return
    if not isinstance(provider, FindsLostCreates):
        await _give_up(stepper, job, spec, exc, f"{kind} cannot dedupe or list creates")
        return
    sent_at = job.attempts[-1].create_sent_at or job.updated_at
    settle_ms = int(
        (stepper.settings.timeout_for(kind) + stepper.settings.lost_create_settle_seconds) * 1000
    )
    now = stepper.clock()
    note = JobError(
        "create_answer_lost",
        f"{exc.message}; looking for the upstream job before sending again",
        error_class="transient",
    )
    if now < sent_at + settle_ms:
        # Look only once the provider has surely recorded the create, if it got it.
        await stepper.wait_then_retry(job, sent_at + settle_ms, note, count=False)
        return
    since = datetime.fromtimestamp((sent_at - LOOKBACK_MS) / 1000, UTC)
    async with stepper.store.reading() as tx:
        exclude = frozenset(await tx.active_upstream_ids(kind))
    try:
        request = await stepper.generation_request(job, spec)  # its input image, if any
        found = await provider.find_created(request, since, exclude)
    except ProviderError as lookup:
        if job.retries < MAX_TRANSIENT_RETRIES:
            wait = now + int(backoff_seconds(job.retries, base=2.0) * 1000)
            await stepper.wait_then_retry(
                job, wait, replace(note, lookup_error=lookup.message), count=True
            )
            return
        await _give_up(
            stepper, job, spec, exc, f"the search for the upstream job failed: {lookup.message}"
        )
        return
    async with stepper.store.reading() as tx:
        taken = await tx.known_upstream_ids(found)
    candidates = [upstream_id for upstream_id in found if upstream_id not in taken]
    if not candidates:
        if job.retries >= MAX_TRANSIENT_RETRIES:
            await _give_up(stepper, job, spec, exc, "creates kept losing their answers")
            return
        log.info("job %s: no upstream job found for the lost create; sending it again", job.id)
        again = await stepper.mark_sending(job, count=True)
        if again is not None:
            await stepper.send_create(again, spec)
        return
    adopted, extras = candidates[0], candidates[1:]
    log.info("job %s: adopting upstream job %s (its create's answer was lost)", job.id, adopted)
    async with stepper.store.reading() as tx:
        siblings = await tx.count_submitting(kind, job.id)
    # Another job of this provider with a create in flight may own an extra: then it is
    # only listed for operators, never canceled.
    also = await _handle_extras(stepper, job, spec, provider, extras, cancel=siblings == 0)
    await stepper.record_running(job, spec, adopted, adopted=True, also=also)


async def _handle_extras(
    stepper: Stepper, job: Job, spec: ModelSpec, provider: Any, extras: list[str], *, cancel: bool
) -> Also | None:
    """Cancel the candidates not adopted where the provider can (and ``cancel``); list
    them all."""
    if not extras:
        return None
    outcomes: list[tuple[str, str]] = []
    for upstream_id in extras:
        outcome = "duplicate_running"
        if cancel and provider.supports_cancel:
            try:
                await provider.cancel(upstream_id)
                outcome = "duplicate_canceled"
            except ReelgateError as exc:
                log.info("job %s: cancel of duplicate %s failed: %s", job.id, upstream_id, exc.code)
        outcomes.append((upstream_id, outcome))

    async def write(tx: Tx) -> None:
        for upstream_id, outcome in outcomes:
            note = f"a second upstream job matched job {job.id}'s lost create; " + (
                "canceled" if outcome == "duplicate_canceled" else "it could not be canceled"
            )
            await record_create(job, spec, outcome, note, upstream_id, stepper.clock())(tx)

    return write
