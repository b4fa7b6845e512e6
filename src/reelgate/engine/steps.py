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

import contextlib
import logging
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.billing import billable_seconds, capture_hold, charge_for, release_hold
from reelgate.catalog import ModelSpec
from reelgate.engine import progress as prog
from reelgate.engine.events import event_for, record_event
from reelgate.engine.inputs import load_image
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
from reelgate.providers.base import GenerationRequest, Provider, ResultLocation, UpstreamState
from reelgate.runtime import Runtime
from reelgate.store.cooldowns import cooling_until, start_cooldown
from reelgate.store.jobs import Job, count_occupying, fenced_update, now_ms

__all__ = ["MAX_MIRROR_RETRIES", "Stepper", "storage_key"]

log = logging.getLogger(__name__)
MAX_MIRROR_RETRIES = 3
DEFAULT_COOLDOWN_SECONDS = 60.0
CAPACITY_WAIT_MS = 1000
"""How soon a job waiting for a capped deployment looks again."""
"""How long a deployment is skipped after a quota answer that gave no Retry-After."""


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


class Stepper:
    def __init__(self, rt: Runtime, worker_id: str) -> None:
        self.rt = rt
        self.worker_id = worker_id

    async def _write(self, job: Job, values: dict[str, Any], *, release: bool = True) -> bool:
        async with self.rt.db.begin() as conn:
            ok = await self._fenced(conn, job, values, release=release)
        return self._after(job, ok)

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

    def _spec(self, job: Job) -> ModelSpec:
        return self.rt.catalog.get(job.current_model)

    async def advance(self, job: Job) -> None:
        now = now_ms()
        if job.is_final:
            await self._write(job, {"next_run_at": None})
        elif job.cancel_requested:
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
        provider = self.rt.providers.get(self._spec(job).provider)
        if provider is None or not provider.supports_cancel or not job.upstream_id:
            return
        try:
            await provider.cancel(job.upstream_id)
        except ReelgateError as exc:
            log.info("job %s: upstream cancel failed (%s); ignoring", job.id, exc.code)

    async def _finish(self, job: Job, values: dict[str, Any], charge: int) -> bool:
        """Write a final state and settle the job's hold in one transaction: capture
        ``charge`` (completed) or release it all (charge 0). If the lease was lost,
        neither happens; if the hold was already settled, it is not settled again."""
        values = {**values, "cost": charge, "next_run_at": None, "active_provider": None}
        async with self.rt.db.begin() as conn:
            ok = await self._fenced(conn, job, values, release=True)
            if ok and job.hold_id:
                if charge:
                    await capture_hold(conn, job.hold_id, charge)
                else:
                    await release_hold(conn, job.hold_id)
        return self._after(job, ok)

    async def _cancel(self, job: Job, now: int) -> None:
        if job.state in ("submitting", "running"):
            await self._cancel_upstream(job)
        values = {
            "state": "canceled",
            "completed_at": now,
            "units_consumed": 0,
            "attempts": _close_attempt(job, "canceled", None, now),
        }
        await self._finish(job, values, 0)

    async def _timeout(self, job: Job, now: int) -> None:
        await self._cancel_upstream(job)
        error = {
            "code": "timeout",
            "message": "The video was not ready before the job's deadline "
            f"({(job.deadline_at - job.created_at) // 1000} s). Resubmit, or try a faster model.",
        }
        await self._fail(job, error, "timeout", now)

    async def _fail(self, job: Job, error: dict[str, Any], outcome: str, now: int) -> None:
        values = {
            "state": "failed",
            "error": error,
            "completed_at": now,
            "units_consumed": 0,
            "attempts": _close_attempt(job, outcome, error, now),
        }
        await self._finish(job, values, 0)

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

    def _idempotent(self, job: Job) -> bool:
        provider = self.rt.providers.get(self._spec(job).provider)
        return provider is None or provider.idempotent_create

    def _provider(self, spec: ModelSpec) -> Provider:
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
        await self._on_error(job, error, cooldown=False)
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
        spec = self._spec(job)
        now = now_ms()
        if job.state == "queued":
            if await self._cooling(job, spec, now):
                return
            attempts = [
                *job.attempts,
                {
                    "model": spec.id,
                    "upstream_id": None,
                    "outcome": "submitting",
                    "error": None,
                    "started_at": now,
                    "ended_at": None,
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
        elif not job.attempts[-1].get("last_error") and not self._idempotent(job):
            # Claimed in `submitting` with no recorded error: the worker that moved it
            # here died around its create call. The upstream cannot dedupe, so the
            # create may have happened; re-sending could make a second video.
            lost = TransientError("the worker died while submitting", ambiguous=True)
            await self._on_error(job, lost)
            return
        try:
            provider = self._provider(spec)
            image = await load_image(job.params, self.rt.storage, self.rt.settings.net_policy())
            request = GenerationRequest(**self._request(job, spec), image=image)
            submitted = await provider.create(request)
        except ProviderError as exc:
            await self._on_error(job, exc)
            return
        now = now_ms()
        attempts = [dict(a) for a in job.attempts]
        attempts[-1].update(upstream_id=submitted.upstream_id, outcome="running")
        delay_ms = int(poll_delay_seconds(spec.poll_interval_seconds, 0) * 1000)
        await self._write(
            job,
            {
                "state": "running",
                "upstream_id": submitted.upstream_id,
                "running_since": now,
                "poll_count": 0,
                "retries": 0,
                "attempts": attempts,
                "progress": prog.forward(job.progress, prog.RUN_LO),
                "next_run_at": min(now + delay_ms, job.deadline_at),
            },
        )

    async def _poll(self, job: Job) -> None:
        spec = self._spec(job)
        assert job.upstream_id is not None
        try:
            status = await self._provider(spec).status(job.upstream_id)
        except ProviderError as exc:
            await self._on_error(job, exc)
            return
        now = now_ms()
        if status.state is UpstreamState.SUCCEEDED:
            if status.result is None:
                await self._on_error(job, TransientError("upstream finished without a result URL"))
                return
            r = status.result
            result = {
                "upstream_url": r.url,
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
        spec = self._spec(job)
        result = dict(job.result or {})
        location = ResultLocation(
            url=result["upstream_url"], content_type=result.get("content_type") or "video/mp4"
        )
        now = now_ms()
        try:
            m = await mirror_result(
                self._provider(spec),
                location,
                self.rt.storage,
                storage_key(job),
                max_bytes=self.rt.settings.mirror_max_bytes,
            )
        except (ReelgateError, OSError) as exc:
            message = exc.message if isinstance(exc, ReelgateError) else type(exc).__name__
            if job.retries < MAX_MIRROR_RETRIES and not isinstance(exc, InvalidRequest):
                await self._write(
                    job,
                    {
                        "retries": job.retries + 1,
                        "result": {**result, "mirror_error": message},
                        "next_run_at": now + int(backoff_seconds(job.retries, base=2.0) * 1000),
                    },
                )
                return
            result.update(mirror_status="failed", mirror_error=message)
        else:
            result.update(
                mirror_status="stored",
                key=m.key,
                bytes=m.bytes,
                sha256=m.sha256,
                duration_seconds=m.duration_seconds,
                width=m.width,
                height=m.height,
                content_type=m.content_type,
                has_audio=m.has_audio,
                mirror_error=None,
            )
        values = {
            "state": "completed",
            "result": result,
            "progress": 100,
            "completed_at": job.completed_at or now,
            "retries": 0,
            "delivered_by": spec.id,
            "attempts": _close_attempt(job, "completed", None, now),
        }
        if job.completed_at is not None and job.cost is not None:
            # a retried mirror of a finished, already billed video
            await self._finish(job, values, job.cost)
            return
        requested = int(job.params["duration_seconds"])
        seconds = billable_seconds(requested, result.get("duration_seconds"))
        values["units_consumed"] = seconds
        charge = charge_for(self.rt.catalog, spec.id, job.params["resolution"], seconds)
        await self._finish(job, values, charge)

    async def _on_error(self, job: Job, exc: ProviderError, *, cooldown: bool = True) -> None:
        now = now_ms()
        if cooldown and exc.error_class is ErrorClass.QUOTA:
            spec = self._spec(job)
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
            may_duplicate=job.state == "submitting"
            and bool(exc.details.get("ambiguous"))
            and not self._idempotent(job),
        )
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
                    "attempts": _close_attempt(job, exc.error_class.value, error, now),
                    "next_run_at": now,
                },
            )
        else:
            assert isinstance(decision, Fail)
            await self._fail(
                job,
                {"code": decision.code, "message": decision.message},
                exc.error_class.value,
                now,
            )
