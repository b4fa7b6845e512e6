"""One step of one job: the state machine of DESIGN.md.

    queued ──▶ submitting ──▶ running ──▶ mirroring ──▶ completed
       └───────────┴─────────────┴────────────┴──▶ failed | canceled

Each step reads the job as claimed, does at most one piece of upstream I/O,
and records the outcome with a fenced write (``store.jobs.fenced_update``)
that also sets the next wake-up and releases the lease. The only write before
upstream I/O is the move to ``submitting``: it fixes the attempt number, and
so the idempotency key, before the create call, so a worker that dies after
the create is replaced by one that re-sends the *same* create.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.billing import billable_seconds, capture_hold, charge_for, release_hold
from reelgate.catalog import ModelSpec
from reelgate.engine import progress as prog
from reelgate.engine.events import event_for, record_event
from reelgate.engine.inputs import load_image
from reelgate.engine.lost_creates import record_create, settle_lost_create, unsettled
from reelgate.engine.mirror import mirror_result
from reelgate.engine.policy import (
    MAX_TRANSIENT_RETRIES,
    Fail,
    FallBack,
    Retry,
    backoff_seconds,
    decide,
    poll_delay_seconds,
)
from reelgate.errors import (
    ErrorClass,
    InvalidRequest,
    ProviderError,
    QuotaExceeded,
    ReelgateError,
    TransientError,
)
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    Provider,
    ResultLocation,
    UpstreamState,
)
from reelgate.runtime import Runtime
from reelgate.store.cooldowns import cooling_until, start_cooldown
from reelgate.store.db import is_unavailable
from reelgate.store.jobs import Job, count_occupying, fenced_update, now_ms

__all__ = ["Also", "Stepper", "storage_key"]

Also = Callable[[AsyncConnection], Awaitable[None]]
"""More writes that must commit with a step's own (same transaction)."""

log = logging.getLogger(__name__)
DEFAULT_COOLDOWN_SECONDS = 60.0
"""How long a deployment is skipped after a quota answer that gave no Retry-After."""
CAPACITY_WAIT_MS = 1000
"""How soon a job waiting for a capped deployment looks again."""


def _deployment(spec: ModelSpec) -> str:
    """What a cooldown applies to: quota is per provider account and upstream model."""
    return f"{spec.provider}:{spec.upstream_model}"


def storage_key(job: Job) -> str:
    return f"videos/{job.account_id}/{job.id}.mp4"


def _close_attempt(job: Job, outcome: str, error: dict[str, Any] | None, now: int) -> list[Any]:
    attempts = [dict(a) for a in job.attempts]
    if attempts and attempts[-1].get("ended_at") is None:
        attempts[-1].update(outcome=outcome, error=error, ended_at=now)
    return attempts


class _Unloaded:
    """``send_create``'s image argument when the image is still to be loaded."""


UNLOADED = _Unloaded()


class Stepper:
    def __init__(self, rt: Runtime, worker_id: str) -> None:
        self.rt = rt
        self.worker_id = worker_id

    async def _write(
        self, job: Job, values: dict[str, Any], *, release: bool = True, also: Also | None = None
    ) -> bool:
        """A fenced write in its own transaction; ``also`` runs in that transaction
        when the write went through (a record that must commit with the decision)."""

        async def write() -> bool:
            async with self.rt.db.begin() as conn:
                ok = await self._fenced(conn, job, dict(values), release=release)
                if ok and also is not None:
                    await also(conn)
            return ok

        return self._after(job, await self._patiently(job, write))

    async def _patiently(self, job: Job, write: Callable[[], Awaitable[bool]]) -> bool:
        """Run a step's write, riding out a database outage: what the step learned
        upstream (an upstream id above all) must not be lost to a blip. Safe to repeat:
        the fence lets a write through only while this worker holds the job."""
        delay = 0.5
        deadline = time.monotonic() + self.rt.settings.database_timeout_seconds * 8
        while True:
            try:
                return await write()
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "job %s: database unavailable while recording its %s step; retrying in %.1fs",
                    job.id,
                    job.state,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _fenced(
        self, conn: AsyncConnection, job: Job, values: dict[str, Any], *, release: bool
    ) -> bool:
        """The fenced write, plus the event it makes, in the caller's transaction."""
        event = event_for(job.state, job.progress, job.completed_at, values)
        if event is not None:
            values["event_seq"] = job.event_seq + 1
        ok = await fenced_update(conn, job.id, self.worker_id, values, release=release)
        if ok and event is not None:
            await record_event(conn, job.id, job.event_seq + 1, event)
        return ok

    def _after(self, job: Job, ok: bool) -> bool:
        if ok:
            self.rt.events.notify(job.id)
        return self._warn_lost(job, ok)

    def _warn_lost(self, job: Job, ok: bool) -> bool:
        if not ok:
            log.warning(
                "job %s: lease lost before writing %s; another worker has it", job.id, job.state
            )
        return ok

    def spec(self, job: Job) -> ModelSpec:
        return self.rt.catalog.get(job.current_model)

    async def advance(self, job: Job) -> None:
        now = now_ms()
        if job.is_final or job.deleted_at is not None:
            await self._write(job, {"next_run_at": None})
        elif job.cancel_requested and job.completed_at is None:
            await self._cancel(job, now)
        elif now >= job.deadline_at and job.state != "mirroring":
            await self._timeout(job, now)
        elif job.state in ("queued", "submitting"):
            await self._submit(job)
        elif job.state == "running":
            await self._poll(job)
        else:
            await self._mirror(job)

    async def _cancel_upstream(self, job: Job) -> None:
        provider = self.rt.providers.get(self.spec(job).provider)
        if provider is None or not provider.supports_cancel or not job.upstream_id:
            return
        try:
            await provider.cancel(job.upstream_id)
        except ReelgateError as exc:
            log.info("job %s: upstream cancel failed (%s); ignoring", job.id, exc.code)

    async def _finish(
        self,
        job: Job,
        values: dict[str, Any],
        charge: int,
        *,
        also: Also | None = None,
        next_run_at: int | None = None,
    ) -> bool:
        """Write a final state and settle the job's hold in one transaction: capture
        ``charge`` (completed) or release it all (charge 0). If the lease was lost,
        neither happens; if the hold was already settled, it is not settled again.
        ``next_run_at``: the job is settled but has work left (a mirror to retry)."""
        values = {**values, "cost": charge, "next_run_at": next_run_at, "active_provider": None}

        async def write() -> bool:
            async with self.rt.db.begin() as conn:
                ok = await self._fenced(conn, job, dict(values), release=True)
                if ok and job.hold_id:
                    if charge:
                        await capture_hold(conn, job.hold_id, charge)
                    else:
                        await release_hold(conn, job.hold_id)
                if ok and also is not None:
                    await also(conn)
            return ok

        return self._after(job, await self._patiently(job, write))

    async def _cancel(self, job: Job, now: int) -> None:
        if job.state in ("submitting", "running"):
            await self._cancel_upstream(job)
        values = {
            "state": "canceled",
            "completed_at": now,
            "units_consumed": 0,
            "attempts": _close_attempt(job, "canceled", None, now),
        }
        why = "the job was canceled while its create's outcome was unknown"
        await self._finish(job, values, 0, also=unsettled(self, job, self.spec(job), why))

    async def _timeout(self, job: Job, now: int) -> None:
        await self._cancel_upstream(job)
        error = {
            "code": "timeout",
            "message": "The video was not ready before the job's deadline "
            f"({(job.deadline_at - job.created_at) // 1000} s). Resubmit, or try a faster model.",
        }
        why = "the job timed out while its create's outcome was unknown"
        await self._fail(job, error, "timeout", now, also=unsettled(self, job, self.spec(job), why))

    async def _fail(
        self,
        job: Job,
        error: dict[str, Any],
        outcome: str,
        now: int,
        *,
        also: Also | None = None,
    ) -> None:
        values = {
            "state": "failed",
            "error": error,
            "completed_at": now,
            "units_consumed": 0,
            "attempts": _close_attempt(job, outcome, error, now),
        }
        await self._finish(job, values, 0, also=also)

    def _request(self, job: Job, spec: ModelSpec) -> dict[str, Any]:
        p = job.params
        return {
            "job_id": job.id,
            "attempt": job.attempt_no,
            "model": spec.id,
            "upstream_model": spec.upstream_model,
            "prompt": job.prompt,
            "duration_seconds": p["duration_seconds"],
            "resolution": p["resolution"],
            "aspect_ratio": p["aspect_ratio"],
            "width": p["width"],
            "height": p["height"],
            "negative_prompt": p.get("negative_prompt"),
            "seed": p.get("seed"),
        }

    def provider(self, spec: ModelSpec) -> Provider:
        provider = self.rt.providers.get(spec.provider)
        if provider is None:
            reason = self.rt.providers.unavailable_reason(spec.provider) or spec.provider
            raise TransientError(reason, code="provider_unavailable")
        return provider

    async def _cooling(self, job: Job, spec: ModelSpec, now: int) -> bool:
        """A deployment cooling down after a quota answer is not asked again until the
        cooldown ends: the job moves on down its chain (or fails with ``quota``)."""
        until = await cooling_until(self.rt.db, _deployment(spec), now)
        if until is None:
            return False
        attempt = {
            "model": spec.id,
            "upstream_id": None,
            "outcome": "submitting",
            "error": None,
            "started_at": now,
            "ended_at": None,
        }
        job = replace(job, attempts=[*job.attempts, attempt])
        seconds = max(1, (until - now) // 1000)
        error = QuotaExceeded(
            f"{spec.id} is cooling down for {seconds} s after a quota answer from its provider",
            code="cooldown",
        )
        await self.on_error(job, error, cooldown=False)
        return True

    async def _take_slot(self, job: Job, spec: ModelSpec, values: dict[str, Any]) -> bool | None:
        """Move to ``submitting`` only if the deployment has a free slot (its
        ``provider_max_concurrent`` cap), atomically: the count and the write share one
        transaction, serialised per provider (an advisory lock on PostgreSQL; SQLite
        has one writer). False: at capacity, the job looks again shortly. None: lease lost."""
        limit = self.rt.settings.provider_max_concurrent.get(spec.provider)
        async with self.rt.db.begin() as conn:
            if limit:
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(spec.provider)))
                    )
                busy = await count_occupying(conn, spec.provider, job.id)
                if busy >= limit:
                    wait = {"next_run_at": min(now_ms() + CAPACITY_WAIT_MS, job.deadline_at)}
                    ok = await self._fenced(conn, job, wait, release=True)
                    return False if ok else None
            ok = await self._fenced(conn, job, values, release=False)
        return True if self._after(job, ok) else None

    async def _submit(self, job: Job) -> None:
        spec = self.spec(job)
        now = now_ms()
        if job.state == "submitting" and job.attempts[-1].get("create_pending", True):
            # Claimed in `submitting` while a create may be in flight: the worker that
            # sent it died before recording the answer. Whatever failed before that
            # create, this one may have started an upstream job.
            lost = TransientError("the worker stopped while a create was in flight")
            await settle_lost_create(self, job, spec, lost)
            return
        if job.state == "queued" and await self._cooling(job, spec, now):
            return
        # The input image is fetched before the create is marked in flight, so the
        # marked time is when the create went out (a lost create is looked for by it).
        try:
            image = await load_image(job.params, self.rt.storage, self.rt.settings.net_policy())
        except ProviderError as exc:
            await self.on_error(job, exc)
            return
        now = now_ms()
        if job.state == "queued":
            attempts = [
                *job.attempts,
                {
                    "model": spec.id,
                    "upstream_id": None,
                    "outcome": "submitting",
                    "error": None,
                    "started_at": now,
                    "ended_at": None,
                    # set before every create is sent, cleared when its answer is
                    # recorded: a job claimed with it set may have an upstream job
                    "create_pending": True,
                    "create_sent_at": now,
                },
            ]
            values = {
                "state": "submitting",
                "active_provider": spec.provider,
                "attempt_no": job.attempt_no + 1,
                "attempts": attempts,
                "progress": prog.forward(job.progress, 1),
            }
            if not await self._take_slot(job, spec, values):
                return
            job = replace(job, **values)  # type: ignore[arg-type]
        else:
            # A retry after a definite answer (a 5xx, say): mark it in flight, then send.
            marked = await self.mark_sending(job)
            if marked is None:
                return
            job = marked
        await self.send_create(job, spec, image)

    async def mark_sending(self, job: Job, *, count: bool = False) -> Job | None:
        """Record that a create is about to be sent (None: the lease was lost).
        ``count``: this send is a retry that counts against the transient limit."""
        attempts = [dict(a) for a in job.attempts]
        attempts[-1].update(create_pending=True, create_sent_at=now_ms())
        retries = job.retries + 1 if count else job.retries
        if not await self._write(job, {"attempts": attempts, "retries": retries}, release=False):
            return None
        return replace(job, attempts=attempts, retries=retries)

    async def generation_request(self, job: Job, spec: ModelSpec) -> GenerationRequest:
        image = await load_image(job.params, self.rt.storage, self.rt.settings.net_policy())
        return GenerationRequest(**self._request(job, spec), image=image)

    async def send_create(
        self, job: Job, spec: ModelSpec, image: ImageInput | _Unloaded | None = UNLOADED
    ) -> None:
        """Send the create. ``image``: already loaded before the create was marked in
        flight (so the marked send time is the real one); loaded here otherwise."""
        try:
            provider = self.provider(spec)
            if isinstance(image, _Unloaded):
                request = await self.generation_request(job, spec)
            else:
                request = GenerationRequest(**self._request(job, spec), image=image)
            submitted = await provider.create(request)
        except ProviderError as exc:
            if exc.details.get("ambiguous"):
                # sent, but the answer was lost: the upstream job may exist
                await settle_lost_create(self, job, spec, exc)
            else:
                await self.on_error(job, exc)
            return
        await self.record_running(job, spec, submitted.upstream_id)

    async def record_running(
        self,
        job: Job,
        spec: ModelSpec,
        upstream_id: str,
        *,
        adopted: bool = False,
        also: Also | None = None,
    ) -> None:
        now = now_ms()
        attempts = [dict(a) for a in job.attempts]
        attempts[-1].update(upstream_id=upstream_id, outcome="running", create_pending=False)
        if adopted:
            attempts[-1]["adopted"] = True
        delay_ms = int(poll_delay_seconds(spec.poll_interval_seconds, 0) * 1000)
        ok = await self._write(
            job,
            {
                "state": "running",
                "upstream_id": upstream_id,
                "running_since": now,
                "poll_count": 0,
                "retries": 0,
                "attempts": attempts,
                "progress": prog.forward(job.progress, prog.RUN_LO),
                "next_run_at": min(now + delay_ms, job.deadline_at),
            },
            also=also,
        )
        if not ok and not adopted:
            # Another worker has the job now and cannot know this upstream job exists.
            note = "created upstream, but the job's lease was lost before the id was recorded"
            async with self.rt.db.begin() as conn:
                await record_create(job, spec, "untracked", note, upstream_id)(conn)

    async def wait_then_retry(
        self, job: Job, until_ms: int, note: dict[str, Any], *, count: bool
    ) -> None:
        """Look at the job again at ``until_ms`` (the create stays marked in flight)."""
        attempts = [dict(a) for a in job.attempts]
        attempts[-1]["last_error"] = note
        await self._write(
            job,
            {
                "retries": job.retries + 1 if count else job.retries,
                "attempts": attempts,
                "next_run_at": min(until_ms, job.deadline_at),
            },
        )

    async def _poll(self, job: Job) -> None:
        spec = self.spec(job)
        assert job.upstream_id is not None
        try:
            status = await self.provider(spec).status(job.upstream_id)
        except ProviderError as exc:
            await self.on_error(job, exc)
            return
        now = now_ms()
        if status.state is UpstreamState.SUCCEEDED:
            if status.result is None:
                await self.on_error(job, TransientError("upstream finished without a result URL"))
                return
            r = status.result
            result = {
                "upstream_url": r.url,
                # what the upstream says it made (the mirror measures its own copy)
                "duration_seconds": status.duration_seconds,
                "upstream_expires_at": int(r.expires_at.timestamp() * 1000)
                if r.expires_at
                else None,
                "content_type": r.content_type,
                "mirror_status": "pending",
            }
            await self._write(
                job,
                {
                    "state": "mirroring",
                    "result": result,
                    "retries": 0,
                    "progress": prog.forward(job.progress, prog.mirroring_progress()),
                    "next_run_at": now,
                },
            )
            return
        elapsed = (now - (job.running_since or now)) / 1000.0
        estimate = prog.running_progress(status.progress, elapsed, spec.typical_seconds)
        delay_ms = int(poll_delay_seconds(spec.poll_interval_seconds, job.poll_count + 1) * 1000)
        await self._write(
            job,
            {
                "progress": prog.forward(job.progress, estimate),
                "poll_count": job.poll_count + 1,
                "retries": 0,
                "next_run_at": min(now + delay_ms, job.deadline_at),
            },
        )

    async def _mirror(self, job: Job) -> None:
        spec = self.spec(job)
        result = dict(job.result or {})
        location = ResultLocation(
            url=result["upstream_url"], content_type=result.get("content_type") or "video/mp4"
        )
        try:
            m = await mirror_result(
                self.provider(spec),
                location,
                self.rt.storage,
                storage_key(job),
                max_bytes=self.rt.settings.mirror_max_bytes,
            )
        except (ReelgateError, OSError) as exc:
            message = exc.message if isinstance(exc, ReelgateError) else type(exc).__name__
            await self._mirror_failed(
                job, spec, result, message, final=isinstance(exc, InvalidRequest)
            )
            return
        result.update(
            mirror_status="stored",
            key=m.key,
            bytes=m.bytes,
            sha256=m.sha256,
            # what the mirrored file measures; result.duration_seconds stays the upstream's
            measured_duration_seconds=m.duration_seconds,
            width=m.width,
            height=m.height,
            content_type=m.content_type,
            has_audio=m.has_audio,
            mirror_error=None,
            mirror_retry_at=None,
        )
        await self._deliver(job, spec, result, measured=m.duration_seconds)

    async def _deliver(
        self,
        job: Job,
        spec: ModelSpec,
        result: dict[str, Any],
        *,
        measured: float | None,
        mirror_again_at: int | None = None,
    ) -> None:
        """Complete the job and bill it, once. ``mirror_again_at``: the copy failed; the
        video is delivered from the upstream meanwhile (``result.url`` is reelgate's own
        content route) and the mirror is tried again then."""
        now = now_ms()
        values = {
            "state": "mirroring" if mirror_again_at is not None else "completed",
            "result": result,
            "progress": 100,
            "completed_at": job.completed_at or now,
            "retries": 0,
            "delivered_by": spec.id,
            "attempts": _close_attempt(job, "completed", None, now),
        }
        if job.completed_at is not None and job.cost is not None:
            # a retried mirror of a finished, already billed video
            await self._finish(job, values, job.cost, next_run_at=mirror_again_at)
            return
        requested = int(job.params["duration_seconds"])
        reported = measured if measured is not None else result.get("duration_seconds")
        seconds = billable_seconds(requested, reported)
        values["units_consumed"] = seconds
        charge = charge_for(self.rt.catalog, spec.id, job.params["resolution"], seconds)
        await self._finish(job, values, charge, next_run_at=mirror_again_at)

    async def _mirror_failed(
        self, job: Job, spec: ModelSpec, result: dict[str, Any], message: str, *, final: bool
    ) -> None:
        """Quick retries first; then the video is delivered unmirrored (billed, playable
        through reelgate) while the copy is retried with a growing backoff, and given
        up only after ``mirror_background_retries`` more tries or once the upstream's
        link has expired."""
        now = now_ms()
        result["mirror_error"] = message
        quick = self.rt.settings.mirror_quick_retries
        if job.completed_at is None and job.retries < quick and not final:
            await self._write(
                job,
                {
                    "retries": job.retries + 1,
                    "result": result,
                    "next_run_at": now + int(backoff_seconds(job.retries, base=2.0) * 1000),
                },
            )
            return
        tries = int(result.get("mirror_tries") or 0) + 1
        settings = self.rt.settings
        again: int | None = now + int(
            min(settings.mirror_retry_base_seconds * 4 ** (tries - 1), 7200.0) * 1000
        )
        expires = result.get("upstream_expires_at")
        if (
            final
            or tries > settings.mirror_background_retries
            or (expires is not None and again is not None and again >= int(expires))
        ):
            again = None
            log.warning("job %s: mirror given up after %d tries: %s", job.id, tries, message)
        result.update(mirror_status="failed", mirror_tries=tries, mirror_retry_at=again)
        await self._deliver(job, spec, result, measured=None, mirror_again_at=again)

    async def on_error(
        self,
        job: Job,
        exc: ProviderError,
        *,
        cooldown: bool = True,
        unresolved: Also | None = None,
    ) -> None:
        """Apply the policy's decision. ``unresolved``: the error is a create whose
        outcome could not be settled (never re-sent); it records the create for
        operators, in the same transaction as the decision."""
        now = now_ms()
        if cooldown and exc.error_class is ErrorClass.QUOTA:
            spec = self.spec(job)
            pause = exc.retry_after if exc.retry_after is not None else DEFAULT_COOLDOWN_SECONDS
            await start_cooldown(
                self.rt.db, _deployment(spec), now + int(pause * 1000), exc.message
            )
        has_next = job.chain_index + 1 < len(job.chain)
        # An upstream job that itself ended failed cannot succeed on another poll:
        # skip the retries of this step and go straight to the fallback (or fail).
        finished = job.state == "running" and bool(exc.details.get("job_failed"))
        decision = decide(
            exc,
            retries=MAX_TRANSIENT_RETRIES if finished else job.retries,
            has_next=has_next,
            model=job.current_model,
            may_duplicate=unresolved is not None,
            # only the native API takes a fallback list (not the media-video-from-text one)
            suggest_fallback=job.source == "native",
        )
        outcome = "ambiguous" if unresolved is not None else exc.error_class.value
        error: dict[str, Any] = {
            "code": exc.code,
            "message": exc.message,
            "class": exc.error_class.value,
        }
        if exc.upstream_status is not None:
            error["upstream_status"] = exc.upstream_status
        log.info(
            "job %s: %s on %s -> %s",
            job.id,
            exc.error_class.value,
            job.current_model,
            type(decision).__name__,
        )
        if isinstance(decision, Retry):
            attempts = [dict(a) for a in job.attempts]
            if attempts:
                attempts[-1]["last_error"] = error
                if job.state == "submitting":
                    attempts[-1]["create_pending"] = False  # a definite answer
            await self._write(
                job,
                {
                    "retries": job.retries + 1,
                    "attempts": attempts,
                    "next_run_at": min(now + int(decision.delay_seconds * 1000), job.deadline_at),
                },
            )
        elif isinstance(decision, FallBack):
            if job.state == "running":
                with contextlib.suppress(ReelgateError):
                    await self._cancel_upstream(job)
            await self._write(
                job,
                {
                    "state": "queued",
                    "active_provider": None,
                    "chain_index": job.chain_index + 1,
                    "upstream_id": None,
                    "running_since": None,
                    "poll_count": 0,
                    "retries": 0,
                    "attempts": _close_attempt(job, outcome, error, now),
                    "next_run_at": now,
                },
                also=unresolved,
            )
        else:
            assert isinstance(decision, Fail)
            await self._fail(
                job,
                {"code": decision.code, "message": decision.message},
                outcome,
                now,
                also=unresolved,
            )
